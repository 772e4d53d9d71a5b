"""Multi-GPU (or multi-process CPU) training with ``torchrun``: process-group helpers and a
launcher that runs one pipeline stage under ``torch.distributed.run``.

How one run trains on N GPUs of one machine
-------------------------------------------
::

    python -m xfer_nb.distributed --nproc-per-node 4 target \\
        outputs/runs/target/<run-id>/config.json outputs/runs/target/<run-id>

re-launches itself as ``python -m torch.distributed.run --standalone --nproc_per_node 4
-m xfer_nb.distributed target <config.json> <run_dir> [<upstream_dir>]`` (see
:func:`torchrun_command`; calling that command by hand is the same). Each of the N
processes builds the stage's config from ``config.json`` (a run folder's file, as the
sweep writes it, whose ``"config"`` is used and whose ``upstream_dirs`` give the upstream
folder when none is passed; or a plain ``{field: value}`` file) and calls
:func:`xfer_nb.pipeline.intermediate` or :func:`xfer_nb.pipeline.target`. Inside,
:func:`xfer_nb.train.train` sees ``WORLD_SIZE > 1`` and

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

``--mark-done`` writes the run folder's ``DONE.json`` when the stage succeeds, so that a
later ``xfer-nb sweep`` counts the run as finished (it then has no rendered notebook).
Without it the sweep would run the stage again (from its own notebook).

The helpers below work in a plain single process too (rank 0 of 1, no-op barrier).
Nothing here imports torch at module import time.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

STAGES = ("intermediate", "target")


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


# --------------------------------------------------------------------------- launcher

def torchrun_command(nproc: int, module_args: Sequence[str], *, module: str = "xfer_nb.distributed",
                     python: str | None = None) -> list[str]:
    """The argv that runs ``python -m <module> <module_args...>`` in ``nproc`` processes with
    torchrun on this machine (``--standalone``: a free local rendezvous port)."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc={nproc!r} must be an integer >= 1")
    return [python or sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "-m", module, *[str(a) for a in module_args]]


def _load_config(stage: str, path: Path) -> tuple[Any, str | None]:
    from xfer_nb import config as C
    raw = json.loads(path.read_text())
    upstream = None
    if isinstance(raw.get("config"), dict):   # a run folder's config.json
        if raw.get("stage") not in (None, stage):
            raise ValueError(f"{path} is the config of a {raw['stage']!r} run, not of {stage!r}")
        ups = raw.get("upstream_dirs") or {}
        upstream = ups.get("prepare" if stage == "intermediate" else "intermediate")
        raw = raw["config"]
    return C.from_dict(C.STAGES[stage], raw, where=str(path)), upstream


def run_stage(stage: str, config_path: str | os.PathLike, run_dir: str, upstream_dir: str | None = None,
              mark_done: bool = False):
    """Run one training stage in this process (one rank of a torchrun job, or alone)."""
    from xfer_nb import pipeline, runs
    if stage not in STAGES:
        raise ValueError(f"stage={stage!r}; the launcher runs {', '.join(STAGES)}")
    cfg, recorded_upstream = _load_config(stage, Path(config_path))
    upstream = recorded_upstream if upstream_dir is None else upstream_dir
    started = time.time()
    result = getattr(pipeline, stage)(cfg, run_dir, upstream or "")
    if mark_done and is_main_process():
        runs.mark_done(run_dir, {"run_id": Path(run_dir).name, "stage": stage, "launcher": "torchrun",
                                 "world_size": world_size(), "seconds": round(time.time() - started, 1)})
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xfer_nb.distributed", description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("config", help="config.json: a run folder's (as the sweep writes it) or {field: value}")
    parser.add_argument("run_dir")
    parser.add_argument("upstream_dir", nargs="?", default=None,
                        help="upstream run folder; default: the one recorded in config.json ('' for none)")
    parser.add_argument("--nproc-per-node", type=int, default=None,
                        help="outside torchrun: re-launch under torchrun with this many processes")
    parser.add_argument("--mark-done", action="store_true", help="write DONE.json in run_dir on success")
    ns = parser.parse_args(argv)
    if ns.nproc_per_node and not launched():
        import subprocess
        rest = [ns.stage, ns.config, ns.run_dir] + ([ns.upstream_dir] if ns.upstream_dir is not None else [])
        rest += ["--mark-done"] if ns.mark_done else []
        return subprocess.call(torchrun_command(ns.nproc_per_node, rest))
    try:
        run_stage(ns.stage, ns.config, ns.run_dir, ns.upstream_dir, ns.mark_done)
    finally:
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
