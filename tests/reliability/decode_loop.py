"""Decode videos in a loop and report memory (a helper of test_long_runs.py).

``python decode_loop.py BACKEND N FILE...`` decodes 8 frames (indices varying per pass) of the
files in turn, N times after a warm-up of 20, and prints one JSON line: the resident set size
(from /proc/<pid>/statm) and open file descriptors of this process, and of the decord worker
process when there is one, sampled every 20 decodes.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss(pid="self") -> int:
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


def fds(pid="self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def main() -> None:
    backend, n, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    from nrvl.video import decode as dec
    from nrvl.video import decode_frames, probe

    kept = []  # NRVL_TEST_LEAK=1 keeps every clip alive: a deliberate leak, to prove the measure sees one

    def once(k):
        path = files[k % len(files)]
        frames = decode_frames(path, lambda info: [(k + 3 * i) % info.num_frames for i in range(8)],
                               backend=backend)
        assert frames.shape[0] == 8
        if os.environ.get("NRVL_TEST_LEAK"):
            kept.append(frames.clone())
        if k % 5 == 0:
            probe(path, backend=backend)

    for k in range(20):  # warm-up: libraries, allocator pools, the decord worker
        once(k)
    worker = dec._worker.proc.pid if backend == "decord" and dec._worker is not None else None
    samples = []
    for k in range(n + 1):
        if k % 20 == 0:
            samples.append({"decodes": k, "rss": rss(), "fds": fds(),
                            "worker_rss": rss(worker) if worker else None,
                            "worker_fds": fds(worker) if worker else None})
        if k < n:
            once(20 + k)
    same_worker = backend != "decord" or (dec._worker is not None and dec._worker.proc.pid == worker)
    print(json.dumps({"backend": dec.resolve_backend(backend), "samples": samples, "same_worker": same_worker}))


if __name__ == "__main__":
    main()
