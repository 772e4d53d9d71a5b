"""Process-group helpers for data-parallel training under ``torchrun``: rank, world size,
barrier, broadcast, gather. They work in a plain single process too (rank 0 of 1, no-op
barrier), so training code calls them unconditionally.

How :func:`xfer_nb.train.train` uses them when ``WORLD_SIZE > 1``:

* initialises ``torch.distributed`` (``nccl`` when the run's device is CUDA, each process
  on ``cuda:LOCAL_RANK``; ``gloo`` on CPU),
* wraps the model in ``DistributedDataParallel``,
* lets every rank draw the same seeded sequence of batches and keep every
  ``world_size``-th one (rank r takes draws r, r + W, r + 2W, ...), so one optimizer step
  sees ``per_device_train_batch_size x world_size x gradient_accumulation_steps``
  examples: N processes with accumulation ``a`` do the arithmetic of one process with
  accumulation ``N x a`` (the same micro-batches, the same mean gradient),
* writes checkpoints and logs from rank 0 only (every rank's RNG state is gathered into
  the checkpoint, so a multi-process run resumes exactly), runs ``evaluate_fn`` (early
  stopping) on rank 0 and broadcasts the score, and ends with the same weights on every
  rank. After training, only rank 0 evaluates and writes the stage's results; the other
  ranks return ``None``.

:mod:`xfer_nb.launch` starts one pipeline stage this way. This module imports nothing
of the package and no torch at import time, so anything may import it.
"""
from __future__ import annotations

import os
import sys
from typing import Any


# --------------------------------------------------------------------------- environment and process group

def launched_world_size() -> int:
    """WORLD_SIZE as torchrun sets it (1 outside torchrun)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def launched() -> bool:
    """Whether this process was started by torchrun with more than one process."""
    return launched_world_size() > 1


def is_distributed() -> bool:
    """Whether a torch.distributed process group of more than one process is running."""
    if "torch" not in sys.modules:
        return False
    import torch.distributed as dist
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    if is_distributed():
        import torch.distributed as dist
        return dist.get_rank()
    return int(os.environ.get("RANK", "0")) if launched() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if launched() else 0


def world_size() -> int:
    if is_distributed():
        import torch.distributed as dist
        return dist.get_world_size()
    return launched_world_size()


def is_main_process() -> bool:
    return rank() == 0


def init(device_type: str = "cpu") -> bool:
    """Start the process group when launched by torchrun (WORLD_SIZE > 1) and none is running.

    Backend ``nccl`` for ``device_type="cuda"`` (and ``torch.cuda.set_device(LOCAL_RANK)``),
    ``gloo`` otherwise. Returns whether a multi-process group is running afterwards."""
    if not launched():
        return False
    import torch
    import torch.distributed as dist
    if not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(local_rank())
            dist.init_process_group(backend="nccl", device_id=torch.device("cuda", local_rank()))
        else:
            dist.init_process_group(backend="gloo")
    return dist.get_world_size() > 1


def cleanup() -> None:
    """Destroy the process group, if one is running."""
    if "torch" not in sys.modules:
        return
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        import torch.distributed as dist
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` from rank ``src`` on every rank (itself in a single process)."""
    if not is_distributed():
        return obj
    import torch.distributed as dist
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` in a single process)."""
    if not is_distributed():
        return [obj]
    import torch.distributed as dist
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
