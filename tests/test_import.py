"""Importing nrvl.kernels registers the 35 noises and does nothing else (STYLE.md)."""
import subprocess
import sys

CODE = r"""
import sys, random
import torch
state = torch.random.get_rng_state().clone(); py = random.getstate()
import nrvl.kernels as K
assert len(K.list_noises()) == 35, K.list_noises()
heavy = [m for m in ("torch._dynamo", "triton", "transformers", "cv2", "kornia") if m in sys.modules]
assert not heavy, heavy
assert torch.equal(state, torch.random.get_rng_state()), "import touched torch's RNG"
assert py == random.getstate(), "import touched Python's RNG"
assert not torch.cuda.is_initialized()
print("ok")
"""


def test_import_is_light_and_silent():
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ok\n", f"import printed something: {r.stdout!r}"
