"""What data a run reads, and a fingerprint of it, so a run's id changes with its data.

A run id hashes the run's config; this module adds what the config alone does not pin
down: the resolved data folder and the content of the files the run reads. Pointing
`XFER_NB_DATA` elsewhere, or changing one byte of a file a run reads, gives a new id, so
a result made on other data is never reused (jiant's stale-cache failure).

Which files a run reads comes from the task registry (`xfer_nb.tasks`) and the local
reader's own file table (`tasks.local.files`):
- prepare: the intermediate split of each intermediate task, in its languages;
- target: the English training split, and the evaluation split in the evaluation
  languages (all the task has when none are named) and in English;
- intermediate: nothing directly; it reads its prepare run, whose id is in its own.
Hub sources are fingerprinted by dataset name and revision, not by content.

File hashes (sha256 of the bytes) are cached by (path, size, mtime_ns) in
`<outputs>/cache/file-hashes.json`, so planning a study stays fast after the first time.
(A file rewritten with the same size and its old mtime restored by hand would be served
from the cache; delete that file to rehash everything.)
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from xfer_nb import io
from xfer_nb.paths import cache_dir, data_dir as resolve_data_dir

CACHE_FILE = "file-hashes.json"
_CHUNK = 1 << 20


class FileHashes:
    """sha256 of files, remembered by (path, size, mtime_ns); a changed file is rehashed."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self.entries: dict[str, list] = {}
        self.changed = False
        if path is not None and path.is_file():
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(loaded, dict):
                    self.entries = loaded
            except (OSError, ValueError):
                self.entries = {}  # a broken cache is only a slower plan

    def sha256(self, path: str | os.PathLike) -> str:
        path = Path(path)
        st = path.stat()
        key = str(path)
        entry = self.entries.get(key)
        if isinstance(entry, list) and len(entry) == 3 and entry[0] == st.st_size and entry[1] == st.st_mtime_ns:
            return entry[2]
        digest = sha256_file(path)
        self.entries[key] = [st.st_size, st.st_mtime_ns, digest]
        self.changed = True
        return digest

    def save(self) -> None:
        if self.path is not None and self.changed:
            try:
                io.write_json(self.path, self.entries)
                self.changed = False
            except OSError:
                pass  # a read-only outputs folder: the cache is an optimisation only


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def default_hashes(outputs: str | os.PathLike | None = None) -> FileHashes:
    return FileHashes(cache_dir(outputs) / CACHE_FILE)


def reads(stage: str, config: dict[str, Any], root: str | os.PathLike) -> list[tuple[str, str, str]]:
    """The (task, split, language) triples a run of `stage` with `config` reads from a
    local data folder `root`."""
    from xfer_nb import tasks

    wanted: list[tuple[str, str, str]] = []
    if stage == "prepare":
        for task in str(config.get("intermediate_task", "")).split("+"):
            spec = tasks.TASKS.get(task)
            split = spec.intermediate_split.get("local") if spec else None
            if split:
                for lang in config.get("intermediate_languages") or ["en"]:
                    wanted.append((task, split, tasks.canonical_language(task, lang)))
    elif stage == "target":
        task = config.get("target_task", "")
        spec = tasks.TASKS.get(task)
        if spec is None:
            return []
        training = tasks.target_training(task, "local") if "local" in spec.sources else None
        if training is not None:
            wanted.append((training[0], training[2], training[1]))
        split = spec.eval_split.get("local")
        if split:
            langs = [tasks.canonical_language(task, lang) for lang in config.get("eval_languages") or []]
            if not langs:
                from xfer_nb.tasks import local
                langs = sorted({lang for (s, lang) in local.files(task, str(root)) if s == split})
            for lang in [*langs, "en"]:
                wanted.append((task, split, lang))
    return sorted(set(wanted))


def files_read(stage: str, config: dict[str, Any], root: str | os.PathLike) -> list[Path]:
    """The local files behind `reads`, through the local reader's file table."""
    from xfer_nb.tasks import local

    out: set[Path] = set()
    for task, split, lang in reads(stage, config, root):
        if task not in local.FILES:
            continue
        out.update(Path(p) for p in local.files(task, str(root)).get((split, lang), ()))
    return sorted(out)


def run_data(stage: str, config: dict[str, Any], hashes: FileHashes | None = None) -> dict[str, Any]:
    """What goes into a run's identity about its data: {} for a stage that reads no data
    itself; for a local source the resolved folder, each file read (relative path ->
    sha256) and one fingerprint over them; for the hub the dataset and its revision."""
    source = config.get("data_source", "local")
    if stage not in ("prepare", "target"):
        return {}
    if source == "hub":
        task = config.get("target_task") if stage == "target" else config.get("intermediate_task")
        # revision None: not pinned to a revision (yet)
        return {"source": "hub", "datasets": _hub_datasets(str(task)), "revision": config.get("hub_revision")}
    root = resolve_data_dir(config.get("data_dir"))
    hashes = hashes if hashes is not None else FileHashes(None)
    files = {p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p): hashes.sha256(p)
             for p in files_read(stage, config, root)}
    return {"source": "local", "data_dir": str(root), "files": files,
            "fingerprint": io.content_hash(files, 16)}


def _hub_datasets(task: str) -> list[str]:
    try:
        from xfer_nb.tasks.hub import HUB
    except ImportError:
        return [task]
    return sorted({HUB[t].path for t in task.split("+") if t in HUB}) or [task]
