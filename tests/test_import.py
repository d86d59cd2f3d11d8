"""Importing nrvl.kernels registers the 35 noises and does nothing else (STYLE.md)."""
import os
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


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BARE = r"""
import importlib.metadata, os, sys
try:
    importlib.metadata.distribution("kernels")
    installed = True
except importlib.metadata.PackageNotFoundError:
    installed = False
try:
    import kernels
except ModuleNotFoundError as e:
    assert "nrvl.kernels" in str(e), e
    assert "kernels" not in sys.modules
    print("absent", installed)
else:
    assert not kernels.__file__.startswith(os.path.join(os.getcwd(), "kernels")), kernels.__file__
    assert not hasattr(kernels, "corrupt")
    print("pypi", installed)
import nrvl.kernels as K
assert len(K.list_noises()) == 35
"""


def test_bare_name_kernels_in_the_checkout_root_is_the_pypi_project():
    # `python -m ...` in the checkout's root puts kernels/ first on sys.path; transformers >= 5.25
    # imports the PyPI project `kernels`, which our folder must not shadow.
    r = subprocess.run([sys.executable, "-c", BARE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    kind, installed = r.stdout.split()
    assert kind == ("pypi" if installed == "True" else "absent"), r.stdout


def test_bare_name_kernels_without_the_pypi_project_is_not_found():
    # -S: no site-packages, so no PyPI `kernels`; the folder must not pose as it.
    code = ("import sys\ntry:\n    import kernels\nexcept ModuleNotFoundError as e:\n"
            "    print(e.name, 'nrvl.kernels' in str(e), 'kernels' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["kernels", "True", "False"], r.stdout
