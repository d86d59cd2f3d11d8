"""``tiny-qwen2.5-vl``: a 200k-parameter random-weight Qwen2.5-VL, built offline, cached.

Built by the recipe of ``reference/stack-notes.md`` section 5: a byte-level
BPE tokenizer trained on a few sentences and wrapped as ``Qwen2Tokenizer``, the
Qwen2-VL chat template (shortened), a processor with a tiny pixel budget, and
a 2-layer text model with a 2-layer vision tower (``torch.manual_seed(0)``
weights). The folder is saved once under ``<cache>/models/tiny-qwen2.5-vl-v<k>``
and loaded with ``from_pretrained`` like any checkpoint, so it runs the real
transformers Qwen2.5-VL code path (processor, vision tower, M-RoPE,
generation) through :class:`nrvl.models.qwen.QwenVL`.

**Its answers are meaningless**: the weights are random. It exists for tests,
the demo and timing the pipeline without a GPU or a download.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from nrvl.models.qwen import QwenVL

VERSION = 1
FACTOR = 28
#: The tiny pixel budget (4..16 merged patches per frame): 240x320 becomes 84x112.
TINY_MIN_PIXELS = FACTOR * FACTOR * 4
TINY_MAX_PIXELS = FACTOR * FACTOR * 16
TINY_MAX_NEW_TOKENS = 16

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
            "<|image_pad|>", "<|video_pad|>"]

# The Qwen2-VL template, shortened (stack-notes 5b); one string, real newlines.
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CORPUS = [
    "What is happening in the video? Describe the scene in detail.",
    "How many shapes move around? The red rectangle bounces off the edge.",
    "The answer is yes. The answer is no. Four green and yellow discs.",
    "Question: what colour is the background? Answer: dark blue, 0123456789.",
    "Vidéo, 視頻, видео: unicode text round-trips through the byte-level tokenizer.",
]


def default_path() -> Path:
    from nrvl.data import cache_root

    return cache_root() / "models" / f"tiny-qwen2.5-vl-v{VERSION}"


def build_tiny_qwen(folder: os.PathLike | str) -> Path:
    """Build the tiny model and its processor into ``folder`` (created); about a second after imports."""
    import torch
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor,
                              Qwen2VLImageProcessor, Qwen2VLVideoProcessor)
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    # (a) tokenizer
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=400, show_progress=False,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    m = json.loads(bpe.to_str())["model"]
    tok = Qwen2Tokenizer(vocab=m["vocab"], merges=[tuple(p) for p in m["merges"]],
                         eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None)
    tok.add_special_tokens({"additional_special_tokens": SPECIALS})

    # (c) processor with a small pixel budget
    improc = Qwen2VLImageProcessor(min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS)
    vidproc = Qwen2VLVideoProcessor(min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS)
    proc = Qwen2_5_VLProcessor(image_processor=improc, tokenizer=tok, video_processor=vidproc,
                               chat_template=CHAT_TEMPLATE)

    # (d) config, random weights
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIALS}
    cfg = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=4096,
            rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
            bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                           fullatt_block_indexes=[1]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)
        model = Qwen2_5_VLForConditionalGeneration(cfg).eval()
    finally:
        torch.random.set_rng_state(state)  # building the model must not disturb the caller's RNG
    model.generation_config.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    # transformers writes a model's files on rank 0 only once torch.distributed is initialised; every
    # rank of a torchrun builds its own copy of this model, so each must write the whole folder
    if hasattr(model, "should_save_on_this_rank"):
        model.should_save_on_this_rank = lambda is_main_process: True
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a one-shard "Writing model shards" bar in every first run
    try:
        model.save_pretrained(folder)
        proc.save_pretrained(folder)
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    missing = [n for n in _REQUIRED if not (Path(folder) / n).is_file()]
    if missing:
        raise RuntimeError(f"building the tiny model in {folder} wrote no {', '.join(missing)}")
    return folder


_REQUIRED = ("config.json", "model.safetensors", "tokenizer.json")


def _complete(folder: Path) -> bool:
    return all((folder / n).is_file() for n in _REQUIRED)


def _replace_incomplete(built: Path, target: Path) -> None:
    """Put ``built`` in place of an incomplete ``target`` (an older build's leftovers), keeping a
    complete one that another process renamed into place meanwhile."""
    stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.stale.", dir=target.parent))
    try:
        try:
            os.replace(target, stale)  # stale is empty: the incomplete folder takes its place
        except FileNotFoundError:
            pass
        try:
            os.rename(built, target)
        except OSError:
            if not _complete(target):
                raise
    finally:
        shutil.rmtree(stale, ignore_errors=True)


def ensure_tiny_qwen(path: Optional[os.PathLike | str] = None) -> Path:
    """The tiny model's folder, built on first use (atomically: a temp folder renamed into place)."""
    target = Path(path) if path is not None else default_path()
    if _complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build_tiny_qwen(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not _complete(target):  # not another process winning the race: a folder left incomplete
                _replace_incomplete(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


class TinyQwenVL(QwenVL):
    """:class:`QwenVL` on the tiny random model: same code path, tiny pixel budget, 16 new tokens."""

    def __init__(self, name: str = "tiny-qwen2.5-vl", *, path: Optional[str] = None,
                 max_new_tokens: int = TINY_MAX_NEW_TOKENS, **kwargs):
        kwargs.setdefault("min_pixels", TINY_MIN_PIXELS)
        kwargs.setdefault("max_pixels", TINY_MAX_PIXELS)
        super().__init__(name, str(ensure_tiny_qwen(path)), max_new_tokens=max_new_tokens, **kwargs)
