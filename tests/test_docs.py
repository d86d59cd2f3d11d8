"""The examples in the README and in the docstrings run as written."""
from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

import nrvl.kernels as K
from nrvl.kernels import augment, core

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("module", [K, core, augment], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, extraglobs={"torch": __import__("torch")}, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_readme_python_example_runs():
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README lost its Python example"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README, not data
    assert namespace["noisy"].shape == (4, 8, 3, 224, 224)
    assert (namespace["again"] == namespace["noisy"]).all()
