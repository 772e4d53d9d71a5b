"""Run identity and run folders: readable ids that end in a hash of the whole config
(upstream runs included), a done marker written last, and one lock per run folder.

Layout: `<outputs>/runs/<stage>/<run-id>/` holding `config.json`, the executed
`notebook.ipynb`, `notebook.html`, `metrics.jsonl`, figures, and `DONE.json` (last).
A folder without `DONE.json` is unfinished and is redone (resuming from its checkpoint);
one whose recorded config does not hash to its id is reported, never reused.

The id hashes the stage, its code version, its config (with the resolved data folder),
its upstream run ids and `data`: what `xfer_nb.fingerprint` found about the files it
reads, so changed data never reuses a result.

`DONE.json` lists every file of the finished folder (`files`: relative path -> {"size",
and "sha256" for files up to `HASHED_MAX_BYTES`}). A run is done only when that list
still holds (`verify_done`); a folder that fails it is reported by name and redone.
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
from xfer_nb.paths import REPO_ROOT, check_name, outputs_dir

DONE = "DONE.json"
CONFIG = "config.json"
FAILED = "FAILED.json"
METRICS = "metrics.jsonl"
NOTEBOOK = "notebook.ipynb"      # the executed notebook
HTML = "notebook.html"           # the rendered notebook
STAGE_ORDER = ("prepare", "intermediate", "target")

# Part of every run id (as tango's step VERSION): bump a stage's number when its code
# changes what it produces for the same config, so old results are not reused.
# prepare 2: the local XNLI pool is the even premises of dev (odd ones are evaluated).
STAGE_VERSIONS = {"prepare": 2, "intermediate": 1, "target": 1}
# Config fields added after results existed, with the default that reproduces the code before
# them. At that default a field is left out of the run id, so adding it kept every finished
# run valid; any other value is part of the id. (A field whose default changes behaviour
# never goes here: that needs a STAGE_VERSIONS bump instead.)
NEUTRAL_DEFAULTS = {"word_label_token": "first"}
HASHED_MAX_BYTES = 1 << 20   # DONE.json records sha256 of files up to 1 MiB, sizes of all
LOCK = ".lock"


class RunConflict(RuntimeError):
    """A run folder is locked by another sweep, or its config does not match its id."""


@dataclass(frozen=True)
class RunSpec:
    """One stage of one configuration: what to run and where its result lives."""

    stage: str
    config: dict[str, Any]
    upstream: dict[str, str] = field(default_factory=dict)  # stage -> run id
    label: str = ""  # readable part of the id
    data: dict[str, Any] = field(default_factory=dict)  # xfer_nb.fingerprint.run_data: the data it reads

    @property
    def identity(self) -> dict[str, Any]:
        config = {k: v for k, v in self.config.items() if k not in NEUTRAL_DEFAULTS or v != NEUTRAL_DEFAULTS[k]}
        return {"stage": self.stage, "version": STAGE_VERSIONS.get(self.stage, 1), "config": config,
                "upstream": self.upstream, "data": self.data}

    @property
    def run_id(self) -> str:
        return f"{slug(self.label) or self.stage}-{io.content_hash(self.identity)}"

    def dir(self, outputs: str | os.PathLike | None = None) -> Path:
        return run_path(outputs, self.stage, self.run_id)

    def upstream_dirs(self, outputs: str | os.PathLike | None = None) -> dict[str, str]:
        root = outputs_dir(outputs) / "runs"
        return {stage: str(root / stage / rid) for stage, rid in self.upstream.items()}


def slug(text: str) -> str:
    """A file-name-safe form of `text`: no `/`, no `..`, no control characters."""
    out = re.sub(r"[^A-Za-z0-9+_.=-]+", "-", text).strip("-")[:80]
    return re.sub(r"\.{2,}", ".", out).strip(".")


def run_path(outputs: str | os.PathLike | None, stage: str, run_id: str) -> Path:
    """`<outputs>/runs/<stage>/<run-id>`, refusing a stage or id that is not a plain name."""
    check_name(stage, what="stage")
    check_name(run_id, what="run id")
    return outputs_dir(outputs) / "runs" / stage / run_id


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def has_done_marker(run_dir: str | os.PathLike) -> bool:
    """DONE.json exists (the run claims to be finished; `verify_done` checks the claim)."""
    return (Path(run_dir) / DONE).is_file()


def is_done(run_dir: str | os.PathLike) -> bool:
    """Finished and intact: DONE.json exists and every file it lists is there, unchanged."""
    return not verify_done(run_dir)


def verify_done(run_dir: str | os.PathLike) -> list[str]:
    """What is wrong with a finished run folder ([] if nothing): DONE.json missing or
    unreadable, a listed file missing, of another size, or (small files) another sha256."""
    run_dir = Path(run_dir)
    path = run_dir / DONE
    if not path.is_file():
        return [f"{DONE} is missing"]
    try:
        done = json.loads(path.read_text(encoding="utf-8"))
        files = done["files"]
        if not isinstance(files, dict) or not files:
            raise TypeError("empty")
    except (OSError, ValueError, KeyError, TypeError) as err:
        return [f"{DONE} is unreadable or lists no files ({type(err).__name__}: {err})"]
    problems = []
    for rel, want in sorted(files.items()):
        p = run_dir / rel
        try:
            size = p.stat().st_size
        except OSError:
            problems.append(f"{rel} is missing")
            continue
        if size != want.get("size"):
            problems.append(f"{rel} has {size} bytes, DONE.json lists {want.get('size')}")
        elif "sha256" in want and _sha256(p) != want["sha256"]:
            problems.append(f"{rel} was changed after the run finished (sha256 differs)")
    for required in (CONFIG,):
        if required not in files:
            problems.append(f"{DONE} does not list {required}")
    return problems


def manifest(run_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Every file under a run folder (not the lock, not DONE/FAILED, not hidden temporary
    files): relative path -> size, and sha256 for files up to HASHED_MAX_BYTES."""
    run_dir = Path(run_dir)
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(run_dir.rglob("*")):
        rel = p.relative_to(run_dir)
        if not p.is_file() or p.is_symlink() or any(part.startswith(".") for part in rel.parts) \
                or rel.as_posix() in (DONE, FAILED):
            continue
        size = p.stat().st_size
        entry: dict[str, Any] = {"size": size}
        if size <= HASHED_MAX_BYTES:
            entry["sha256"] = _sha256(p)
        out[rel.as_posix()] = entry
    return out


def _sha256(path: Path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_identity(spec: RunSpec, run_dir: Path) -> None:
    """Refuse a folder whose recorded (readable) config is not the one its id stands for."""
    path = run_dir / CONFIG
    if not path.is_file():
        return
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(recorded, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError):
        return  # a cut config.json: a broken folder, not another config (verify_done reports it; it is redone)
    identity = {k: recorded.get(k) for k in ("stage", "version", "config", "upstream", "data")}
    if io.content_hash(identity) != io.content_hash(spec.identity):
        raise RunConflict(f"{run_dir} holds a config that does not match its id {spec.run_id}; "
                          "it was edited or written by other code. Move it away; it is never reused.")


def write_config(spec: RunSpec, run_dir: Path, outputs: str | os.PathLike | None = None) -> None:
    outputs = outputs if outputs is not None else run_dir.parents[2]
    io.write_json(run_dir / CONFIG, {**spec.identity, "run_id": spec.run_id, "git_commit": git_commit(),
                                     "upstream_dirs": spec.upstream_dirs(outputs)})


def mark_done(run_dir: str | os.PathLike, summary: dict[str, Any] | None = None) -> None:
    """Write DONE.json last: the summary and the manifest of every file in the folder."""
    run_dir = Path(run_dir)
    (run_dir / FAILED).unlink(missing_ok=True)
    io.write_json(run_dir / DONE, {"finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **(summary or {}),
                                   "files": manifest(run_dir)})


def mark_failed(run_dir: str | os.PathLike, error: str, last_cell: str | None = None) -> None:
    io.write_json(Path(run_dir) / FAILED, {"failed_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                           "error": error, "last_cell": last_cell})


@contextlib.contextmanager
def locked(run_dir: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on a run folder; refuse at once if another sweep has it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    handle = open(run_dir / LOCK, "w")
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
