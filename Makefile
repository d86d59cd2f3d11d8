# NRVL: the README's two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.nrvl-installed
export HF_HUB_OFFLINE := 1
export FORCE_QWENVL_VIDEO_READER := decord
export TOKENIZERS_PARALLELISM := false

.PHONY: install ffmpeg test test-fast demo bench bench-1080p bench-reuse bench-quick clean

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch/torchvision come from the machine's local wheel store; pinned so pip never pulls another build.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[all]'
	touch $(STAMP)

install: $(STAMP) ffmpeg

# torchcodec needs FFmpeg's shared libraries (Debian 12: FFmpeg 5.1). Installed only when missing.
ffmpeg:
	@if ldconfig -p | grep -q 'libavutil.so.5[6-9]\|libavutil.so.60'; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing FFmpeg shared libraries for torchcodec"; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends \
			libavutil57 libavcodec59 libavformat59 libavdevice59 libavfilter8 libswscale6 libswresample4 >/dev/null; \
	else echo "warning: FFmpeg libraries missing and apt-get unavailable; torchcodec decoding will fail (decord still works)"; fi

test: install
	TRITON_INTERPRET=1 $(PY) -m pytest -q -p no:cacheprovider tests

test-fast: install
	TRITON_INTERPRET=1 $(PY) -m pytest -q -p no:cacheprovider -m "not slow" tests

demo: install
	$(PY) -m nrvl.demo

BENCH_TAG = $(shell $(PY) -c "import torch,re;print(re.sub('[^A-Za-z0-9]+','-',torch.cuda.get_device_name()) if torch.cuda.is_available() else 'cpu')" 2>/dev/null)-$(shell date +%Y-%m-%d)

bench: install
	$(PY) -m pytest -q -p no:cacheprovider bench --benchmark-json=bench/results/$(BENCH_TAG).json
	$(PY) bench/report.py bench/results --out bench/REPORT.md

# The CPU at 1080p (8 and 16 frames): outside `make bench`'s 10 minutes, ~5 more; its own JSON.
bench-1080p: install
	NRVL_BENCH_FULL=1 $(PY) -m pytest -q -p no:cacheprovider bench/test_kernels.py -k 1080p --benchmark-json=bench/results/$(BENCH_TAG)-1080p.json
	$(PY) bench/report.py bench/results --out bench/REPORT.md

# 8f and 16f 720p on the CPU with the allocator setting the nrvl command uses (reuse_cpu_memory): its own JSON.
bench-reuse: install
	NRVL_REUSE_CPU_MEMORY=1 $(PY) -m pytest -q -p no:cacheprovider bench/test_kernels.py -k "(cpu_8f_720p or cpu_16f_720p) and not eager" --benchmark-json=bench/results/$(BENCH_TAG)-reuse.json
	$(PY) bench/report.py bench/results --out bench/REPORT.md

bench-quick: install
	$(PY) -m pytest -q -p no:cacheprovider bench -m quick --benchmark-json=/tmp/nrvl-bench-quick.json
	$(PY) bench/report.py /tmp/nrvl-bench-quick.json --out /tmp/nrvl-bench-quick.md
	@echo "quick report: /tmp/nrvl-bench-quick.md"

clean:
	rm -rf $(VENV) build *.egg-info
