#!/usr/bin/env bash
# One prepared run of the GPU half of issue 8 on a lent device machine (one call, ~9 minutes).
#
# Here, once (fetches the packages that machine lacks into the ignored .whl/):
#     bash bench/gpu.sh --fetch-wheels
# Then through the device tool, from the repository root, with carry [".whl"]:
#     bash bench/gpu.sh
# Results come back under $OUT (at most 8 files): device.txt, cuda-tests.log, one pytest-benchmark
# JSON per step and REPORT.md made from them. Copy the JSONs into bench/results/ (renamed
# <gpu>-<date>*.json) and regenerate bench/REPORT.md with bench/report.py. Each step has its own
# time limit, so a slow step (inductor compiles, a hang) costs that step only and the JSONs of the
# finished steps still come back. No step asserts a timing.
set -u
cd "$(dirname "$0")/.."

WHEELS="kornia==0.9.0 kornia_rs==0.2.0 qwen-vl-utils==0.0.14 torchcodec==0.17.0"
if [ "${1:-}" = "--fetch-wheels" ]; then
    # The device's python3 is CPython 3.12 on x86-64 with torch 2.11 (no kornia, torchcodec, qwen-vl-utils).
    mkdir -p .whl
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    for w in $WHEELS; do
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            --platform any -d .whl "$w" || echo "could not fetch $w (its step will report it missing)"
    done
    du -sh .whl
    exit 0
fi

OUT=${OUT:-/tmp/nrvl-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset TRITON_INTERPRET  # compiled Triton kernels, not the interpreter
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || echo "warning: carried wheels did not install"
fi
export PYTHONPATH=/tmp/site
# The project itself, editable (its finder maps nrvl.kernels to kernels/), without touching the machine's torch.
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir -e . \
    || { echo "the project did not install"; exit 1; }

{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"
  python3 -c "import torchcodec; print('torchcodec', torchcodec.__version__)" 2>&1 | tail -1
  python3 -c "import kornia; print('kornia', kornia.__version__)" 2>&1 | tail -1
} > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

step() {  # step NAME SECONDS ARGS...: one pytest run with its own JSON and time limit
    local name=$1 limit=$2; shift 2
    echo "== $name (limit ${limit}s)"
    timeout -k 10 "$limit" python3 -m pytest -q -p no:cacheprovider "$@" --benchmark-json="$OUT/$name.json" 2>&1 | tail -15
    echo "== $name: exit ${PIPESTATUS[0]} at $SECONDS s"
}

# 1. Correctness on the GPU: every test with a CUDA parameter or a compiled-Triton check.
echo "== cuda tests (limit 150s)"
timeout -k 10 150 python3 -m pytest -q -p no:cacheprovider -x tests -k "cuda or triton or compiled" \
    -p no:randomly > "$OUT/cuda-tests.log" 2>&1
echo "== cuda tests: exit $? at $SECONDS s"; tail -5 "$OUT/cuda-tests.log"

# 2. Every noise at 8f 720p first (the <= 1 ms and <= 2x-floor targets), then the memory budget off,
#    then the other sizes, kornia side by side, batching, glass shuffle, preprocessing and NVDEC.
step cuda-8f-720p 150 bench/test_kernels.py -k "cuda and 8f-720p"
NRVL_WORK_MEMORY=inf step cuda-8f-720p-one-chunk 90 bench/test_kernels.py -k "cuda and 8f-720p"
step cuda-other-sizes 120 bench/test_kernels.py -k "cuda and not 8f-720p"
step cuda-rest 90 bench/test_kornia.py bench/test_batching.py bench/test_blur_speed.py bench/test_preprocess.py \
    bench/test_decode.py -k "cuda or nvdec or gpu"

python3 bench/report.py "$OUT" --out "$OUT/REPORT.md" && echo "report: $OUT/REPORT.md"
ls -la "$OUT"
