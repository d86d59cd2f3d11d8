"""NRVL evaluation entry point: ``python eval/run.py ...`` or ``torchrun ... eval/run.py ...``.

Flags: ``python eval/run.py --help`` (see :mod:`nrvl.evaluate`).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout, uninstalled

from nrvl.evaluate import main  # noqa: E402

if __name__ == "__main__":
    # glibc reuses freed large buffers, as under `nrvl eval` (NRVL_REUSE_CPU_MEMORY=0 opts out)
    raise SystemExit(main(reuse_cpu_memory=True))
