"""Summarise finished runs into one tidy table (as HELM summarises its runs).

Each row is one metric of one target run in one language, carrying every axis value
(walked up from the target run through its intermediate and prepare runs), the
language's resource tier, whether it was seen in the intermediate data, its URIEL
distance to the intermediate language set, and whether XLM-R was pretrained on it
(``in_pretraining``), and how many passes its intermediate run made over its data
(``intermediate_epochs``: a recipe setting, not an axis, recorded so that a report can
say it).

``machine`` and ``intermediate_machine`` name the machine (the CPU model, the instruction
sets that choose its numeric kernels, and the visible GPUs, from each run's DONE.json) that
trained the target run and its intermediate run: `precision: auto` is bf16 on one CPU and fp32 on another, under the same
run id, so a report must be able to tell when a study's runs came from different machines.

Held-out validation rows (``split == "validation"`` in a run's metrics.jsonl: the task's
score, ``learned`` 1/0 and ``learning_threshold``) are not evaluation rows: they become
run-level columns, ``target_validation``/``target_learned`` for the target run and
``intermediate_validation``/``intermediate_learned`` for its intermediate run (None where
a run has no such rows: older runs, retrieval tasks, the baseline's missing intermediate).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterable

import pandas as pd

from xfer_nb import io, languages, machine, runs
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
    axes["intermediate_run"] = inter_id or ""
    axes["intermediate_epochs"] = None
    if inter_id:
        inter = _config(root, "intermediate", inter_id)
        axes["intermediate_epochs"] = inter["config"].get("num_train_epochs")
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


VALIDATION = "validation"


def validation_summary(rows: list[dict]) -> dict:
    """(score, learned, threshold) from a run's validation rows (xfer_nb.learning); Nones where absent."""
    from xfer_nb import learning
    found = learning.from_metrics(rows)
    if found is None:
        return {"validation": None, "learned": None, "learning_threshold": None}
    return {"validation": found["validation_score"], "learned": found["learned"],
            "learning_threshold": found["learning_threshold"]}


def _run_validation(root: Path, stage: str, run_id: str) -> dict:
    path = root / stage / run_id / runs.METRICS
    if not run_id or not path.is_file():
        return validation_summary([])
    return validation_summary(list(io.read_jsonl(path)))


def _run_machine(root: Path, stage: str, run_id: str) -> str:
    """The machine label of a finished run (machine.describe); '' for no run."""
    path = root / stage / run_id / runs.DONE
    if not run_id or not path.is_file():
        return ""
    return machine.describe(json.loads(path.read_text()).get("machine"))


def _in_pretraining(lang: str):
    try:
        return languages.in_pretraining(lang)
    except KeyError:
        return None


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
    upstream: dict[str, dict] = {}   # an intermediate run feeds several target runs: read it once
    for run_dir in sorted((root / "target").glob("*")):
        if not runs.is_done(run_dir) or (wanted is not None and run_dir.name not in wanted):
            continue
        axes = run_axes(root, json.loads((run_dir / runs.CONFIG).read_text()))
        metrics = list(io.read_jsonl(run_dir / runs.METRICS))
        target_val = validation_summary(metrics)
        inter_id = axes["intermediate_run"]
        if inter_id not in upstream:
            inter_val = _run_validation(root, "intermediate", inter_id)
            upstream[inter_id] = dict(intermediate_validation=inter_val["validation"],
                                      intermediate_learned=inter_val["learned"],
                                      intermediate_machine=_run_machine(root, "intermediate", inter_id))
        axes.update(target_validation=target_val["validation"], target_learned=target_val["learned"],
                    machine=_run_machine(root, "target", run_dir.name), **upstream[inter_id])
        for metric in metrics:
            if metric.get("split") == VALIDATION:
                continue
            rows.append({**metric, **axes})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["tier"] = table["language"].map(_tier)
    table["in_pretraining"] = table["language"].map(_in_pretraining)
    cache: dict[tuple[str, str], float] = {}
    table["distance"] = [cache.setdefault((l, s), _distance(l, s))
                         for l, s in zip(table["language"], table["intermediate_languages"])]
    if write:
        path = outputs_dir(outputs) / "reports" / "results.csv"
        io.write_text(path, table.to_csv(index=False))
    return table
