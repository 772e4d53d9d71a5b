"""Summarise finished runs into one tidy table (as HELM summarises its runs).

Each row is one metric of one target run in one language, carrying every axis value
(walked up from the target run through its intermediate and prepare runs), the
language's resource tier, whether it was seen in the intermediate data, and its URIEL
distance to the intermediate language set.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterable

import pandas as pd

from xfer_nb import io, languages, runs
from xfer_nb.config import NO_INTERMEDIATE
from xfer_nb.paths import outputs_dir

AXES = ("seed", "intermediate_task", "intermediate_size", "language_set", "intermediate_languages",
        "model_name_or_path", "target_task")


def _config(root: Path, stage: str, run_id: str) -> dict:
    return json.loads((root / stage / run_id / runs.CONFIG).read_text())


def run_axes(root: Path, target_cfg: dict) -> dict:
    """The axis values of a finished target run, read from it and its upstream runs."""
    cfg = target_cfg["config"]
    axes = {"seed": cfg["seed"], "target_task": cfg["target_task"], "model_name_or_path": cfg["model_name_or_path"],
            "intermediate_task": NO_INTERMEDIATE, "intermediate_size": 0, "language_set": NO_INTERMEDIATE,
            "intermediate_languages": ""}
    inter_id = target_cfg.get("upstream", {}).get("intermediate")
    if inter_id:
        inter = _config(root, "intermediate", inter_id)
        prep = _config(root, "prepare", inter["upstream"]["prepare"])["config"]
        axes.update(intermediate_task=prep["intermediate_task"], intermediate_size=prep["intermediate_size"],
                    language_set=prep["language_set"], intermediate_languages=",".join(prep["intermediate_languages"]))
    return axes


def _distance(lang: str, inter_langs: str) -> float:
    if not inter_langs:
        return math.nan
    try:
        return languages.distance_to_set(lang, inter_langs.split(","))
    except (KeyError, ValueError):
        return math.nan


def _tier(lang: str) -> str:
    try:
        return languages.tier(lang)
    except KeyError:
        return "unknown"


def collect(outputs: str | os.PathLike | None = None, run_ids: Iterable[str] | None = None,
            write: bool = True) -> pd.DataFrame:
    """Build the tidy table of finished target runs (all, or those in `run_ids`)."""
    root = outputs_dir(outputs) / "runs"
    wanted = set(run_ids) if run_ids is not None else None
    rows = []
    for run_dir in sorted((root / "target").glob("*")):
        if not runs.is_done(run_dir) or (wanted is not None and run_dir.name not in wanted):
            continue
        axes = run_axes(root, json.loads((run_dir / runs.CONFIG).read_text()))
        for metric in io.read_jsonl(run_dir / runs.METRICS):
            rows.append({**metric, **axes})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["tier"] = table["language"].map(_tier)
    cache: dict[tuple[str, str], float] = {}
    table["distance"] = [cache.setdefault((l, s), _distance(l, s))
                         for l, s in zip(table["language"], table["intermediate_languages"])]
    if write:
        path = outputs_dir(outputs) / "reports" / "results.csv"
        io.write_text(path, table.to_csv(index=False))
    return table
