"""``eval/run.py`` that also records every corrupted clip's digest (a helper of test_determinism.py).

Run as ``torchrun ... frames_run.py <eval/run.py flags>``; each rank appends one JSON line per
clip to ``$NRVL_TEST_FRAME_DUMP/frames.rank<RANK>.jsonl``.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from rel_util import install_frame_recorder


def _sink(records):
    path = os.path.join(os.environ["NRVL_TEST_FRAME_DUMP"], f"frames.rank{os.environ.get('RANK', '0')}.jsonl")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in records))


if __name__ == "__main__":
    install_frame_recorder(_sink)
    from nrvl.evaluate import main

    raise SystemExit(main())
