"""torchrun plumbing: who am I, the one sharding rule, barriers and agreement.

A plain ``python eval/run.py`` is rank 0 of a world of 1 and never touches
``torch.distributed``. Under ``torchrun`` the rank and world size come from the
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); the process group uses
NCCL when the process drives a GPU and gloo otherwise (CPU tests).

:func:`shard` is the only place that decides which rank sees which sample:
rank ``r`` takes ``items[r::world_size]``, VLMEvalKit's strided split.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Sequence, TypeVar

T = TypeVar("T")

# Rank 0 judges while the others wait at the last barrier; inference shards can
# finish hours apart. VLMEvalKit's default is 3600 s; ours is longer.
DEFAULT_TIMEOUT_S = 6 * 3600


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job.

    Attributes:
        rank: global rank, 0 .. world_size - 1.
        world_size: number of processes.
        local_rank: rank on this machine (the GPU index it uses).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(env, name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from None


def info_from_env(env=None) -> DistInfo:
    """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (torchrun's variables).

    Raises:
        ValueError: if they are not integers or are inconsistent.
    """
    env = os.environ if env is None else env
    world = _env_int(env, "WORLD_SIZE", 1)
    rank = _env_int(env, "RANK", 0)
    local = _env_int(env, "LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} and WORLD_SIZE={world} are inconsistent (need 0 <= RANK < WORLD_SIZE)")
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def timeout_from_env(env=None) -> float:
    """``DIST_TIMEOUT``: seconds a collective may wait (:data:`DEFAULT_TIMEOUT_S` when unset or empty).

    Raises:
        ValueError: not a finite number of seconds > 0.
    """
    import math

    env = os.environ if env is None else env
    raw = env.get("DIST_TIMEOUT")
    if raw is None or not str(raw).strip():
        return float(DEFAULT_TIMEOUT_S)
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"environment variable DIST_TIMEOUT must be a number of seconds > 0, got {raw!r}")
    return value


def shard(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """The items rank ``rank`` of ``world_size`` processes handles: ``items[rank::world_size]``.

    Raises:
        ValueError: if ``world_size < 1`` or ``rank`` is not in ``[0, world_size)``.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    return list(items[rank::world_size])


def device_for(info: DistInfo, requested: str | None = None) -> str:
    """The torch device string this rank should run its model on.

    ``requested`` (``--device``) wins; otherwise ``cuda:<local_rank>`` when CUDA
    is available, else ``cpu``.
    """
    import torch

    if requested:
        return requested
    if torch.cuda.is_available():
        return f"cuda:{info.local_rank % torch.cuda.device_count()}"
    return "cpu"


def init(info: DistInfo, device: str, timeout_s: float | None = None) -> None:
    """Join the process group (no-op for a single process or if already joined).

    NCCL when ``device`` is CUDA, gloo otherwise.
    """
    if not info.distributed:
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if timeout_s is None:
        timeout_s = timeout_from_env()
    backend = "gloo"
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
        backend = "nccl"
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))


def _group_ready() -> bool:
    if "torch.distributed" not in sys.modules:  # never joined a group; do not import torch just to ask
        return False
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return False
    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    """Wait for every rank (no-op outside a process group)."""
    if not _group_ready():
        return
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def broadcast(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (``obj`` must pickle; small only)."""
    if not _group_ready():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_errors(error: Any) -> list:
    """Every rank's error (None for none), so all ranks stop together.

    Each rank passes its own error (a message, or any small picklable value such as
    ``(message, exit code)``) or None; every rank gets the list of the non-empty ones
    from all ranks, in rank order. A collective: every rank must call it.
    """
    if not _group_ready():
        return [error] if error else []
    import torch.distributed as dist

    box: list = [None] * dist.get_world_size()
    dist.all_gather_object(box, error)
    return [e for e in box if e]


def finalize(timeout_s: float = 300.0) -> None:
    """Leave the process group, if one was joined, after every rank got here.

    A rank that tears its gloo pairs down while a peer still talks to it can abort
    ("terminate called without an active exception"): wait for all ranks first. The wait
    is bounded, so a rank that died does not hang the others (gloo's monitored barrier).
    """
    if not _group_ready():
        return
    import torch.distributed as dist

    try:
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=timedelta(seconds=timeout_s))
        else:
            barrier()
    except Exception:  # noqa: BLE001 - a peer is gone: leave anyway
        pass
    dist.destroy_process_group()
