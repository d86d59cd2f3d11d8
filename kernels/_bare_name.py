"""What ``import kernels`` means when a checkout's root is on ``sys.path``.

The ``kernels/`` folder is installed as ``nrvl.kernels``. The bare name ``kernels``
belongs to the PyPI project of that name, which transformers (>= 5.25) imports.
``python -m ...`` run in the checkout's root puts the root first on ``sys.path``,
so the folder would shadow that project and break transformers; instead the
import is handed over to the real package, or fails as if the folder were absent.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys


def hand_over(init_file: str) -> None:
    """Replace ``sys.modules['kernels']`` (this folder) with the PyPI ``kernels`` package."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(init_file)))
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != root]
    sys.modules.pop("kernels._bare_name", None)
    spec = importlib.machinery.PathFinder.find_spec("kernels", path)
    if spec is None:
        del sys.modules["kernels"]
        raise ModuleNotFoundError(
            "No module named 'kernels' (this checkout's kernels/ folder is the package nrvl.kernels)",
            name="kernels")
    module = importlib.util.module_from_spec(spec)
    sys.modules["kernels"] = module  # an import statement returns what sys.modules holds at its end
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop("kernels", None)
        raise
