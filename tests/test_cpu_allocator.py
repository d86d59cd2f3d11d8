"""``nrvl.kernels.reuse_cpu_memory``: large CPU buffers come from a reused heap, not fresh mmaps."""
from __future__ import annotations

import ctypes
import json
import subprocess
import sys
import textwrap

import pytest

import nrvl.kernels as K


def _has_glibc_mallinfo2() -> bool:
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version
        libc.mallinfo2
    except (OSError, AttributeError):
        return False
    return sys.platform.startswith("linux")


@pytest.mark.parametrize("bad", [-1, 2048, float("nan"), "512", True, None])
def test_bad_keep_mib_is_one_clear_error(bad):
    with pytest.raises(ValueError, match=r"keep_mib must be a number of MiB in \[0, 2047\], got"):
        K.reuse_cpu_memory(bad)


# In a child: the setting is process-wide and one-way. mallinfo2's hblks counts the blocks
# malloc serves with mmap; arena is the heap's size.
_CHILD = textwrap.dedent("""
    import ctypes, json, torch
    import nrvl.kernels as K

    class Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                    "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = Info
    def probe():
        x = torch.empty(64 * 2**20, dtype=torch.uint8)
        x.fill_(1)
        during = libc.mallinfo2()
        del x
        after = libc.mallinfo2()
        return {"mmapped_during": during.hblks, "mmapped_after": after.hblks, "arena_during": during.arena}

    before = probe()
    ok = K.reuse_cpu_memory(256)
    first = probe()
    later = [probe() for _ in range(8)]
    print(json.dumps({"ok": ok, "before": before, "first": first, "later": later}))
""")


@pytest.mark.skipif(not _has_glibc_mallinfo2(), reason="needs glibc (2.33+ for mallinfo2) to observe malloc")
def test_large_blocks_come_from_the_heap_and_are_reused():
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["ok"] is True
    # Without it, a 64 MiB block is one more mmap while alive, unmapped on free.
    assert r["before"]["mmapped_during"] == r["before"]["mmapped_after"] + 1
    # With it, no mmap: the heap grows once to hold the block ...
    assert r["first"]["mmapped_during"] == r["first"]["mmapped_after"]
    assert r["first"]["arena_during"] >= 64 * 2**20
    # ... and later blocks of that size reuse that heap (trim threshold 256 MiB keeps it): no mmap,
    # and the heap does not grow per block. A small malloc landing in the freed block between two
    # probes can split it once, so the heap may hold one more block, never more.
    for r_k in r["later"]:
        assert r_k["mmapped_during"] == r_k["mmapped_after"] == r["first"]["mmapped_after"]
    grown = max(r_k["arena_during"] for r_k in r["later"]) - r["first"]["arena_during"]
    assert grown <= 64 * 2**20 + 8 * 2**20, grown


@pytest.mark.parametrize("env, calls", [(None, 1), ("1", 1), ("0", 0), ("off", 0), ("false", 0)])
def test_nrvl_command_turns_it_on_unless_opted_out(monkeypatch, env, calls):
    from nrvl import cli

    seen = []
    monkeypatch.setattr(K, "reuse_cpu_memory", lambda *a, **k: seen.append(a) or True)
    if env is None:
        monkeypatch.delenv("NRVL_REUSE_CPU_MEMORY", raising=False)
    else:
        monkeypatch.setenv("NRVL_REUSE_CPU_MEMORY", env)
    assert cli.main(["list"]) == 0
    assert len(seen) == calls
