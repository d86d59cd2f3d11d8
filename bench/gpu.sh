#!/usr/bin/env bash
# One prepared run of the GPU half of issue 8 on a lent device machine (one call, under ~8.5 minutes).
#
# Here, once (fetches the packages that machine lacks into the ignored .whl/):
#     bash bench/gpu.sh --fetch-wheels
# Then through the device tool, from the repository root, with carry [".whl"]:
#     bash bench/gpu.sh
# Results come back under $OUT (at most 8 files): device.txt (versions, what the probes found and
# what was skipped), cuda-tests.log, one pytest-benchmark JSON per step and REPORT.md made from
# them. Copy the JSONs into bench/results/ (renamed <gpu>-<date>*.json) and regenerate
# bench/REPORT.md with bench/report.py. No step asserts a timing.
#
# Time: every step has its own limit and none runs past DEADLINE seconds after the start (a step
# that would is shortened or skipped), so the whole script ends by about DEADLINE + 25 s: inside
# the device tool's 600 s even if every step hits its limit. A step is stopped with SIGINT
# (`timeout -s INT`): pytest then ends the session as after Ctrl-C and pytest-benchmark still
# writes the JSON of what that step had measured (SIGTERM would lose it); SIGKILL follows 10 s later.
# Order: the most important measurements first (every noise at 8f 720p on CUDA), the GPU
# correctness tests, then the rest; the other sizes last, with whatever time is left.
set -u
cd "$(dirname "$0")/.."

# av (PyAV) bundles its own FFmpeg 8: the decode/preprocessing benchmarks write their clips with it,
# and torchcodec's FFmpeg-8 core can load those libraries when the machine has no FFmpeg of its own.
WHEELS="kornia==0.9.0 kornia_rs==0.2.0 qwen-vl-utils==0.0.14 torchcodec==0.17.0 av==18.1.0"
if [ "${1:-}" = "--fetch-wheels" ]; then
    # The device's python3 is CPython 3.12 on x86-64 with torch 2.11 (no kornia, torchcodec, av, qwen-vl-utils).
    mkdir -p .whl
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    for w in $WHEELS; do
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            --platform any -d .whl "$w" || echo "could not fetch $w (the device run probes for it and skips what needs it)"
    done
    du -sh .whl  # carry limit: 64 MiB with the working tree
    exit 0
fi

DEADLINE=${NRVL_GPU_DEADLINE:-480}
OUT=${OUT:-/tmp/nrvl-gpu-out}
WORK=${NRVL_GPU_WORK:-/tmp/nrvl-gpu}  # probe files, the pytest plugin, FFmpeg links
SITE=${NRVL_GPU_SITE:-/tmp/site}     # the carried wheels
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset TRITON_INTERPRET  # compiled Triton kernels, not the interpreter
DEVTXT="$OUT/device.txt"
: > "$DEVTXT"
log() { echo "$*" | tee -a "$DEVTXT"; }

if ls .whl/*.whl >/dev/null 2>&1; then
    timeout -k 5 60 python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" .whl/*.whl || log "warning: carried wheels did not install"
fi
export PYTHONPATH=$SITE:$WORK
# The project itself, editable (its finder maps nrvl.kernels to kernels/), without touching the machine's torch.
timeout -k 5 60 python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir -e . \
    || { log "the project did not install"; exit 1; }
log "installed at $SECONDS s"

# Probe what the optional stack can do here, in one process: versions, modules, PyAV writing a clip
# (as the decode benchmarks do), torchcodec decoding it on the CPU and on the GPU (NVDEC).
# Prints "KEY=0|1" lines for the shell (to $WORK/probe.env) and a readable account (to device.txt).
cat > "$WORK/probe.py" <<'EOF'
import importlib, os, sys
only_torchcodec = sys.argv[1:] == ["torchcodec"]
env = {}

def say(line):
    print(line, flush=True)

def short(e):
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"

import torch
if not only_torchcodec:
    try:
        import triton
        say(f"torch {torch.__version__} (CUDA {torch.version.cuda}) triton {triton.__version__} "
            f"GPU {torch.cuda.get_device_name()} x{torch.cuda.device_count()}")
    except Exception as e:  # noqa: BLE001
        say(f"torch {torch.__version__}: no usable GPU or triton ({short(e)})")
    missing = []
    for m in ("kornia", "av", "torchcodec", "decord", "transformers", "qwen_vl_utils", "openai", "matplotlib"):
        try:
            mod = importlib.import_module(m)
            say(f"module {m}: {getattr(mod, '__version__', 'ok')}")
        except Exception as e:  # noqa: BLE001
            say(f"module {m}: missing ({short(e)})")
            missing.append(m)
    env["MISSING_MODULES"] = " ".join(missing)
clip = os.path.join(os.environ["NRVL_PROBE_DIR"], "probe.mp4")
if not only_torchcodec:
    env["HAVE_AV"] = 0
    try:
        from nrvl.video import make_clip, write_video
        write_video(make_clip(8, 144, 256), clip, fps=8)
        env["HAVE_AV"] = 1
        say("av writes a clip: yes")
    except Exception as e:  # noqa: BLE001
        say(f"av writes a clip: no ({short(e)})")
env["HAVE_TORCHCODEC"] = env["HAVE_NVDEC"] = 0
if os.path.exists(clip):
    # torchcodec itself first (nrvl's decode_frames would fall back to another backend), then on
    # the GPU both torchcodec and decode_frames(device="cuda"), which the benchmarks call.
    try:
        from torchcodec.decoders import VideoDecoder
        cpu = VideoDecoder(clip).get_frames_at([0, 3]).data
        env["HAVE_TORCHCODEC"] = 1
        say(f"torchcodec decodes on the CPU: yes {tuple(cpu.shape)}")
    except Exception as e:  # noqa: BLE001
        say(f"torchcodec decodes on the CPU: no ({short(e)})")
    if env["HAVE_TORCHCODEC"]:
        try:
            gpu = VideoDecoder(clip, device="cuda").get_frames_at([0, 3]).data
            assert gpu.device.type == "cuda", f"frames came back on {gpu.device}"
            from nrvl.video import decode_frames
            gpu = decode_frames(clip, [0, 3], device="cuda", backend="torchcodec")
            assert gpu.device.type == "cuda", f"decode_frames gave frames on {gpu.device}"
            env["HAVE_NVDEC"] = 1
            say("torchcodec decodes on the GPU (NVDEC): yes")
        except Exception as e:  # noqa: BLE001
            say(f"torchcodec decodes on the GPU (NVDEC): no ({short(e)})")
else:
    say("torchcodec: not probed (no clip to decode without av)")
with open(os.path.join(os.environ["NRVL_PROBE_DIR"], "probe.env"), "w") as f:
    for k, v in env.items():
        f.write(f'{k}="{v}"\n')
EOF
rm -f "$WORK/probe.env"
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv 2>&1
  NRVL_PROBE_DIR=$WORK timeout -k 5 60 python3 -W ignore "$WORK/probe.py" 2>&1
} >> "$DEVTXT"
MISSING_MODULES="kornia av torchcodec decord qwen_vl_utils openai matplotlib" HAVE_AV=0 HAVE_TORCHCODEC=0 HAVE_NVDEC=0
[ -f "$WORK/probe.env" ] && . "$WORK/probe.env" || log "the probe did not finish: assuming no optional module"
# torchcodec without FFmpeg on the machine: give it PyAV's bundled FFmpeg 8 under the usual library
# names (links in one folder, so the libraries' own $ORIGIN look-ups find each other), re-probe in a
# fresh process, and keep LD_LIBRARY_PATH only if torchcodec then decodes.
if [ "$HAVE_AV" = 1 ] && [ "$HAVE_TORCHCODEC" = 0 ] && [ -d "$SITE/av.libs" ] \
        && ! [[ " $MISSING_MODULES " == *" torchcodec "* ]]; then
    FF=$WORK/ffmpeg-from-av
    mkdir -p "$FF"
    ln -sf "$SITE"/av.libs/* "$FF/"
    for f in "$SITE"/av.libs/lib{avutil,avcodec,avformat,avdevice,avfilter,swscale,swresample}-*.so.*; do
        [ -e "$f" ] || continue
        b=$(basename "$f"); major=$(echo "$b" | sed -E 's/.*\.so\.([0-9]+).*/\1/')
        ln -sf "$f" "$FF/${b%%-*}.so.$major"
    done
    log "torchcodec found no FFmpeg: retrying with PyAV's ($(ls "$FF" | grep -c '^libav') libav* links)"
    LD_LIBRARY_PATH="$FF${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" NRVL_PROBE_DIR=$WORK \
        timeout -k 5 45 python3 -W ignore "$WORK/probe.py" torchcodec >> "$DEVTXT" 2>&1
    . "$WORK/probe.env"
    if [ "$HAVE_TORCHCODEC" = 1 ]; then
        export LD_LIBRARY_PATH="$FF${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        log "torchcodec uses PyAV's FFmpeg (LD_LIBRARY_PATH=$FF)"
    fi
fi
export NRVL_MISSING_MODULES="$MISSING_MODULES"
log "probed at $SECONDS s: missing modules: ${MISSING_MODULES:-none}; av=$HAVE_AV torchcodec=$HAVE_TORCHCODEC nvdec=$HAVE_NVDEC"

# A pytest plugin for these runs ($WORK/nrvl_device.py, loaded with -p nrvl_device):
# * a test whose set-up or body stops at "No module named X", X one of the modules probed missing,
#   is reported as skipped (naming X) instead of as an error: the logs then show only real failures;
# * NRVL_TEST_FIRST (file names, in order) runs those files' tests first, the rest after them in
#   pytest's order (pytest sorts the paths it is given, so their order on the command line is lost).
cat > "$WORK/nrvl_device.py" <<'EOF'
import os

import pytest

MISSING = set(os.environ.get("NRVL_MISSING_MODULES", "").split())
FIRST = os.environ.get("NRVL_TEST_FIRST", "").split()


def pytest_collection_modifyitems(config, items):
    if FIRST:
        rank = {name: i for i, name in enumerate(FIRST)}
        items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))  # stable: pytest's order within


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    exc = call.excinfo
    if rep.failed and exc is not None and exc.errisinstance(ModuleNotFoundError):
        name = (getattr(exc.value, "name", None) or "").split(".")[0]
        if name in MISSING:
            rep.outcome = "skipped"
            rep.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: the device lacks {name}")
EOF

remaining() { echo $(( DEADLINE - SECONDS - 10 )); }  # 10 s: the SIGKILL grace of a step
cap() {  # cap WANT: WANT, or less so that the step ends (grace included) by DEADLINE
    local want=$1 left; left=$(remaining)
    [ "$left" -lt "$want" ] && want=$left
    echo "$want"
}

step() {  # step NAME SECONDS ARGS...: one pytest run with its own JSON and time limit
    local name=$1 limit; limit=$(cap "$2"); shift 2
    if [ "$limit" -lt 15 ]; then log "== $name: skipped, no time left ($SECONDS s)"; return; fi
    echo "== $name (limit ${limit}s, at $SECONDS s)"
    timeout -s INT -k 10 "$limit" python3 -m pytest -q -p no:cacheprovider -p nrvl_device "$@" \
        --benchmark-json="$OUT/$name.json" 2>&1 | tail -15
    local rc=${PIPESTATUS[0]}
    log "== $name: exit $rc at $SECONDS s (limit ${limit}s)$([ "$rc" = 124 ] && echo ': stopped at the limit, its JSON kept')"
}

# 1. Every noise at 8f 720p on CUDA, default mode: the <= 1 ms and <= 2x-floor targets.
step cuda-8f-720p 150 bench/test_kernels.py -k "cuda and 8f-720p"

# 2. Correctness on the GPU: every test with a CUDA parameter or a compiled-Triton check, the
#    Triton kernels' files first, CPU-only matches (test_compiled's CPU fusion checks ...) last.
#    No -x: one failure or missing module must not hide the rest.
TESTS_K="cuda or triton or compiled"
[ "$HAVE_NVDEC" = 1 ] && TESTS_K="$TESTS_K or test_gpu_decode_matches_cpu"
limit=$(cap 90)
if [ "$limit" -ge 15 ]; then
    echo "== cuda tests (limit ${limit}s, at $SECONDS s)"
    NRVL_TEST_FIRST="test_weather_triton.py test_glass_triton.py test_random.py test_temporal.py test_contract.py
                     test_video_decode.py" \
    timeout -s INT -k 10 "$limit" python3 -m pytest -q -rs -p no:cacheprovider -p no:randomly -p nrvl_device \
        tests -k "$TESTS_K" --deselect tests/test_video_decode.py::test_cuda_request_without_cuda_decodes_on_cpu \
        > "$OUT/cuda-tests.log" 2>&1
    rc=$?
    log "== cuda tests: exit $rc at $SECONDS s (limit ${limit}s)$([ "$rc" = 124 ] && echo ': stopped at the limit')"
    tail -5 "$OUT/cuda-tests.log"
else
    log "== cuda tests: skipped, no time left ($SECONDS s)"
fi

# 3. The memory budget off (one chunk per call) at 8f 720p: the frame noises (pointwise ones skip themselves).
NRVL_WORK_MEMORY=inf step cuda-8f-720p-one-chunk 40 bench/test_kernels.py -k "cuda and 8f-720p"

# 4. Kornia side by side (skips itself without kornia), batching and the training step, the glass shuffle.
step cuda-rest 60 bench/test_kornia.py bench/test_batching.py bench/test_blur_speed.py -k "cuda"

# 5. NVDEC decoding and the preprocessing path: only where PyAV writes the clips and torchcodec decodes on the GPU.
if [ "$HAVE_AV" = 1 ] && [ "$HAVE_NVDEC" = 1 ]; then
    step cuda-decode 45 bench/test_decode.py bench/test_preprocess.py -k "cuda or gpu"
else
    log "== cuda-decode: skipped (needs av and torchcodec decoding on the GPU: av=$HAVE_AV torchcodec=$HAVE_TORCHCODEC nvdec=$HAVE_NVDEC)"
fi

# 6. The other sizes (16f 720p, 8f and 16f 1080p), with whatever time is left.
step cuda-other-sizes 200 bench/test_kernels.py -k "cuda and not 8f-720p"

timeout -k 5 20 python3 bench/report.py "$OUT" --out "$OUT/REPORT.md" && echo "report: $OUT/REPORT.md"
log "done at $SECONDS s"
ls -la "$OUT"
