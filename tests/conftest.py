"""Shared test set-up: CPU-only, offline, Triton through its interpreter when there is no GPU."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("FORCE_QWENVL_VIDEO_READER", "decord")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

if not torch.cuda.is_available():
    # Must be set before any @triton.jit decorator runs (stack-notes.md section 3).
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running tests (deselect with -m 'not slow')")
    config.addinivalue_line("markers", "gpu: needs a CUDA device")


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """Shared by the test modules of one session: the tiny model and the demo clips are built once."""
    return tmp_path_factory.getbasetemp() / "nrvl-cache"


@pytest.fixture
def eval_env(cache_dir, monkeypatch, tmp_path):
    """Offline evaluation set-up: the shared cache, no judge credentials, cwd in tmp (no stray .env)."""
    monkeypatch.setenv("NRVL_CACHE", str(cache_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def budget():
    """``set_work_memory``, with the chunking budget restored after the test."""
    from nrvl.kernels import _memory
    saved = _memory.work_memory()
    yield _memory.set_work_memory
    _memory.set_work_memory(*saved)


@pytest.fixture(scope="module")
def demo_root(cache_dir):
    """The demo dataset's folder, built once into the shared cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("NRVL_CACHE", str(cache_dir))
    try:
        from nrvl.data import prepare_dataset

        return prepare_dataset("MMBench_Video_demo")
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def tiny(cache_dir, demo_root):
    """The tiny offline Qwen2.5-VL (random weights), built once into the shared cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("NRVL_CACHE", str(cache_dir))
    mp.setenv("HF_HUB_OFFLINE", "1")
    try:
        from nrvl.models import build_model

        return build_model("tiny-qwen2.5-vl")
    finally:
        mp.undo()


@pytest.fixture
def prepared_indices(monkeypatch):
    """Every question index the model is asked to prepare, in order (one call per sample)."""
    seen = []
    from nrvl.models.qwen import QwenVL

    real = QwenVL.prepare

    def prepare(self, batch):
        seen.extend(r.index for r in batch)
        return real(self, batch)

    monkeypatch.setattr(QwenVL, "prepare", prepare)
    return seen
