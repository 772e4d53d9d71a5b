"""Run one training stage on N GPUs (or N CPU processes) of one machine with ``torchrun``.

::

    python -m xfer_nb.launch --nproc-per-node 4 target \\
        outputs/runs/target/<run-id>/config.json outputs/runs/target/<run-id>

re-launches itself as ``python -m torch.distributed.run --standalone --nproc_per_node 4
-m xfer_nb.launch target <config.json> <run_dir> [<upstream_dir>]`` (see
:func:`torchrun_command`; calling that command by hand is the same). Each of the N
processes builds the stage's config from ``config.json`` (a run folder's file, as the
sweep writes it, whose ``"config"`` is used and whose ``upstream_dirs`` give the upstream
folder when none is passed; or a plain ``{field: value}`` file) and calls
:func:`xfer_nb.pipeline.intermediate` or :func:`xfer_nb.pipeline.target`, whose training
sees ``WORLD_SIZE > 1`` and trains data-parallel (:mod:`xfer_nb.distributed`).

``--mark-done`` writes the run folder's ``DONE.json`` when the stage succeeds, so that a
later ``xfer-nb sweep`` counts the run as finished (it then has no rendered notebook).
Without it the sweep would run the stage again (from its own notebook).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from xfer_nb import config as C
from xfer_nb import distributed, pipeline, runs

STAGES = ("intermediate", "target")


def torchrun_command(nproc: int, module_args: Sequence[str], *, module: str = "xfer_nb.launch",
                     python: str | None = None) -> list[str]:
    """The argv that runs ``python -m <module> <module_args...>`` in ``nproc`` processes with
    torchrun on this machine (``--standalone``: a free local rendezvous port)."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc={nproc!r} must be an integer >= 1")
    return [python or sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "-m", module, *[str(a) for a in module_args]]


def _load_config(stage: str, path: Path) -> tuple[Any, str | None]:
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
    if stage not in STAGES:
        raise ValueError(f"stage={stage!r}; the launcher runs {', '.join(STAGES)}")
    cfg, recorded_upstream = _load_config(stage, Path(config_path))
    upstream = recorded_upstream if upstream_dir is None else upstream_dir
    started = time.time()
    result = getattr(pipeline, stage)(cfg, run_dir, upstream or "")
    if mark_done and distributed.is_main_process():
        runs.mark_done(run_dir, {"run_id": Path(run_dir).name, "stage": stage, "launcher": "torchrun",
                                 "world_size": distributed.world_size(), "seconds": round(time.time() - started, 1)})
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xfer_nb.launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("config", help="config.json: a run folder's (as the sweep writes it) or {field: value}")
    parser.add_argument("run_dir")
    parser.add_argument("upstream_dir", nargs="?", default=None,
                        help="upstream run folder; default: the one recorded in config.json ('' for none)")
    parser.add_argument("--nproc-per-node", type=int, default=None,
                        help="outside torchrun: re-launch under torchrun with this many processes")
    parser.add_argument("--mark-done", action="store_true", help="write DONE.json in run_dir on success")
    ns = parser.parse_args(argv)
    if ns.nproc_per_node and not distributed.launched():
        import subprocess
        rest = [ns.stage, ns.config, ns.run_dir] + ([ns.upstream_dir] if ns.upstream_dir is not None else [])
        rest += ["--mark-done"] if ns.mark_done else []
        return subprocess.call(torchrun_command(ns.nproc_per_node, rest))
    try:
        run_stage(ns.stage, ns.config, ns.run_dir, ns.upstream_dir, ns.mark_done)
    finally:
        distributed.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
