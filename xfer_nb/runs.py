"""Run identity and run folders: readable ids that end in a hash of the whole config
(upstream runs included), a done marker written last, and one lock per run folder.

Layout: `<outputs>/runs/<stage>/<run-id>/` holding `config.json`, the executed
`notebook.ipynb`, `notebook.html`, `metrics.jsonl`, figures, and `DONE.json` (last).
A folder without `DONE.json` is unfinished and is redone (resuming from its checkpoint);
one whose recorded config does not hash to its id is reported, never reused.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from xfer_nb import io
from xfer_nb.paths import REPO_ROOT, outputs_dir

DONE = "DONE.json"
CONFIG = "config.json"
FAILED = "FAILED.json"
METRICS = "metrics.jsonl"

# Part of every run id (as tango's step VERSION): bump a stage's number when its code
# changes what it produces for the same config, so old results are not reused.
# prepare 2: the local XNLI pool is the even premises of dev (odd ones are evaluated).
STAGE_VERSIONS = {"prepare": 2, "intermediate": 1, "target": 1}


class RunConflict(RuntimeError):
    """A run folder is locked by another sweep, or its config does not match its id."""


@dataclass(frozen=True)
class RunSpec:
    """One stage of one configuration: what to run and where its result lives."""

    stage: str
    config: dict[str, Any]
    upstream: dict[str, str] = field(default_factory=dict)  # stage -> run id
    label: str = ""  # readable part of the id

    @property
    def identity(self) -> dict[str, Any]:
        return {"stage": self.stage, "version": STAGE_VERSIONS.get(self.stage, 1), "config": self.config,
                "upstream": self.upstream}

    @property
    def run_id(self) -> str:
        return f"{slug(self.label) or self.stage}-{io.content_hash(self.identity)}"

    def dir(self, outputs: str | os.PathLike | None = None) -> Path:
        return outputs_dir(outputs) / "runs" / self.stage / self.run_id

    def upstream_dirs(self, outputs: str | os.PathLike | None = None) -> dict[str, str]:
        root = outputs_dir(outputs) / "runs"
        return {stage: str(root / stage / rid) for stage, rid in self.upstream.items()}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9+_.=-]+", "-", text).strip("-")[:80]


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def is_done(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / DONE).is_file()


def check_identity(spec: RunSpec, run_dir: Path) -> None:
    """Refuse a folder whose recorded config is not the one its id stands for."""
    path = run_dir / CONFIG
    if not path.is_file():
        return
    recorded = json.loads(path.read_text())
    identity = {k: recorded.get(k) for k in ("stage", "version", "config", "upstream")}
    if io.content_hash(identity) != io.content_hash(spec.identity):
        raise RunConflict(f"{run_dir} holds a config that does not match its id {spec.run_id}; "
                          "it was edited or written by other code. Move it away; it is never reused.")


def write_config(spec: RunSpec, run_dir: Path) -> None:
    io.write_json(run_dir / CONFIG, {**spec.identity, "run_id": spec.run_id, "git_commit": git_commit(),
                                     "upstream_dirs": spec.upstream_dirs(run_dir.parents[2])})


def mark_done(run_dir: str | os.PathLike, summary: dict[str, Any] | None = None) -> None:
    run_dir = Path(run_dir)
    (run_dir / FAILED).unlink(missing_ok=True)
    io.write_json(run_dir / DONE, {"finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **(summary or {})})


def mark_failed(run_dir: str | os.PathLike, error: str, last_cell: str | None = None) -> None:
    io.write_json(Path(run_dir) / FAILED, {"failed_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                           "error": error, "last_cell": last_cell})


@contextlib.contextmanager
def locked(run_dir: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on a run folder; refuse at once if another sweep has it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = open(run_dir / ".lock", "w")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunConflict(f"{run_dir} is being run by another sweep (its lock is held); not touching it.") from None
        yield
    finally:
        handle.close()


def write_metrics(run_dir: str | os.PathLike, rows: list[dict]) -> Path:
    path = Path(run_dir) / METRICS
    io.write_jsonl(path, rows)
    return path
