"""What a plan holds, what is done, and what the rest should cost: on this machine
from measured runs, on a GPU from a documented FLOP-count table."""
from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

from xfer_nb.paths import outputs_dir
from xfer_nb.runs import CONFIG, DONE, STAGE_ORDER, RunSpec, is_done

# Planning throughput of xlm-roberta-large on ONE A100 (bf16 autocast, dynamic padding),
# in examples per second: ESTIMATES derived from FLOP counts, NOT measurements. A
# training example costs about 6·N·T FLOPs and an evaluation example 2·N·T (N ≈ 3.0e8
# non-embedding parameters, T = tokens per example: 128 for sentence pairs and tagging,
# 384-token windows for QA, 4 × 128 for multiple choice, ~64 for retrieval sentences), run
# at ~35% of the A100's 312 TFLOP/s bf16 peak. Re-measure on the real cluster (the
# DONE.json timings of the first runs) and replace these numbers.
GPU_THROUGHPUT_ESTIMATES_XLMR_LARGE_A100 = {
    #  kind            train ex/s  eval ex/s
    "sentence-pair": {"train": 400, "eval": 1200},
    "tagging": {"train": 400, "eval": 1200},
    "qa": {"train": 120, "eval": 360},
    "multiple-choice": {"train": 100, "eval": 300},
    "retrieval": {"train": 0, "eval": 2500},
}
FAMILY_KIND = {"pair_classification": "sentence-pair", "tagging": "tagging", "qa": "qa",
               "multiple_choice": "multiple-choice", "retrieval": "retrieval"}


def _kind(task: str) -> str:
    from xfer_nb import tasks
    return FAMILY_KIND[tasks.TASKS[task].family] if task in tasks.TASKS else "sentence-pair"


# Training-set sizes of the hub's intermediate data (train splits; xnli: per language),
# for sizing `intermediate_size: -1` (the full pool) in the GPU estimate.
HUB_INTERMEDIATE_EXAMPLES = {"mnli": 392_702, "xnli": 392_702, "qqp": 363_846, "squad": 87_599,
                             "squad_v2": 130_319, "hellaswag": 39_905, "cosmosqa": 25_262, "commonsenseqa": 9_741,
                             "siqa": 33_410, "anli": 162_865, "udpos": 21_253, "panx": 20_000, "pawsx": 49_401}
# Full English training sets of the XTREME target tasks (Hu et al. 2020) and approximate
# evaluation sizes (examples per language × languages); used only for GPU estimates.
FULL_TRAIN_EXAMPLES = {"xnli": 392_702, "pawsx": 49_401, "udpos": 21_253, "panx": 20_000, "xquad": 87_599,
                       "mlqa": 87_599, "tydiqa": 3_696, "tatoeba": 0, "bucc2018": 0}
EVAL_EXAMPLES = {"xnli": (5_010, 15), "pawsx": (2_000, 7), "udpos": (1_000, 33), "panx": (5_000, 40),
                 "xquad": (1_190, 11), "mlqa": (5_000, 7), "tydiqa": (600, 9), "tatoeba": (2_000, 36),
                 "bucc2018": (800_000, 4)}
DEFAULT_EPOCHS = {"intermediate": 2.0, "target": 3.0}


def _measured(outputs: Path, stage: str) -> list[tuple[dict, float]]:
    """(config, seconds) of every finished run of a stage under `outputs`."""
    rows = []
    for done in sorted((outputs / "runs" / stage).glob(f"*/{DONE}")):
        try:
            seconds = float(json.loads(done.read_text()).get("seconds"))
            config = json.loads((done.parent / CONFIG).read_text()).get("config", {})
        except (OSError, ValueError, TypeError):
            continue
        rows.append((config, seconds))
    return rows


def _cost_key(stage: str, config: dict) -> tuple:
    if stage == "target":
        return (config.get("model_name_or_path"), config.get("target_task"))
    return (config.get("model_name_or_path"),)


def _fmt_s(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _gpu_seconds(spec: RunSpec, prepare: dict[str, RunSpec]) -> float | None:
    """Estimated A100 seconds of one run of the full study (see the table above)."""
    cfg = spec.config
    table = GPU_THROUGHPUT_ESTIMATES_XLMR_LARGE_A100
    if spec.stage == "intermediate":
        prep = prepare.get(spec.upstream.get("prepare", ""))
        if prep is None:
            return None
        tasks = str(prep.config.get("intermediate_task", "")).split("+")
        size = int(prep.config.get("intermediate_size", 0))  # per task; -1: the full pool
        cap = cfg.get("max_train_examples_per_task", -1)
        epochs = float(cfg.get("num_train_epochs", DEFAULT_EPOCHS["intermediate"]))
        seconds = 0.0
        for t in tasks:
            n = HUB_INTERMEDIATE_EXAMPLES.get(t, 0) * (len(prep.config.get("intermediate_languages", [1]))
                                                       if t == "xnli" else 1) if size < 0 else size
            if isinstance(cap, int) and cap > 0:
                n = min(n, cap)
            seconds += n * epochs / (table[_kind(t)]["train"] or 1)
        return seconds
    if spec.stage == "target":
        task = cfg.get("target_task")
        kind = _kind(task)
        if task not in EVAL_EXAMPLES:
            return None
        cap = cfg.get("max_train_examples", -1)
        n_train = FULL_TRAIN_EXAMPLES.get(task, 0)
        if isinstance(cap, int) and cap > 0:
            n_train = min(n_train, cap)
        epochs = float(cfg.get("num_train_epochs", DEFAULT_EPOCHS["target"]))
        per_lang, n_lang = EVAL_EXAMPLES[task]
        n_lang = len(cfg.get("eval_languages") or []) or n_lang
        ecap = cfg.get("max_eval_examples", -1)
        if isinstance(ecap, int) and ecap > 0:
            per_lang = min(per_lang, ecap)
        train_rate = table[kind]["train"]
        train = n_train * epochs / train_rate if train_rate else 0.0
        return train + per_lang * n_lang / table[kind]["eval"]
    return 0.0  # prepare: data selection, no GPU


def describe_plan(plan: Any, outputs: str | os.PathLike | None = None) -> str:
    """Counts per stage, how many are done, and what the rest should cost.

    CPU estimate: for each run to do, the median measured time (DONE.json `seconds`) of
    finished runs of the same stage under `outputs` with the same model (and target task);
    "unknown" while no such run has finished. GPU estimate:
    the whole plan as xlm-roberta-large on one A100, from the documented estimate table
    `GPU_THROUGHPUT_ESTIMATES_XLMR_LARGE_A100` (not a measurement)."""
    outputs = outputs_dir(outputs)
    specs = list(plan.all_specs())
    prepare = {s.run_id: s for s in specs if s.stage == "prepare"}
    lines = [f"plan {getattr(plan, 'name', '?')!r}: {len(specs)} runs; outputs {outputs}",
             f"{'stage':<14}{'runs':>6}{'done':>6}{'to do':>7}  {'estimate for the runs to do (this machine)':<46}"
             f"{'A100 estimate, whole stage':>28}"]
    total_cpu, unknown, total_gpu, gpu_unknown = 0.0, 0, 0.0, 0
    for stage in STAGE_ORDER:
        stage_specs = [s for s in specs if s.stage == stage]
        if not stage_specs:
            continue
        finished = {s.run_id: is_done(s.dir(outputs)) for s in stage_specs}  # verifies each folder once
        done = [s for s in stage_specs if finished[s.run_id]]
        todo = [s for s in stage_specs if not finished[s.run_id]]
        measured = _measured(outputs, stage)
        by_key: dict[tuple, list[float]] = {}
        for config, seconds in measured:
            by_key.setdefault(_cost_key(stage, config), []).append(seconds)
        est, n_unknown = 0.0, 0
        for spec in todo:
            same = by_key.get(_cost_key(stage, spec.config))  # the same model (and task) only
            if same:
                est += statistics.median(same)
            else:
                n_unknown += 1
        total_cpu += est
        unknown += n_unknown
        if not todo:
            cost = "-"
        elif n_unknown == len(todo):
            cost = "unknown (no finished run like these yet)"
        else:
            cost = f"{_fmt_s(est)} from {len(measured)} measured runs"
            if n_unknown:
                cost += f" + {n_unknown} unknown"
        gpu = [_gpu_seconds(s, prepare) for s in stage_specs]
        gpu_known = [g for g in gpu if g is not None]
        total_gpu += sum(gpu_known)
        gpu_unknown += len(gpu) - len(gpu_known)
        gpu_text = f"{_fmt_s(sum(gpu_known))} GPU" + (f" (+{len(gpu) - len(gpu_known)} ?)" if len(gpu_known) < len(gpu) else "")
        lines.append(f"{stage:<14}{len(stage_specs):>6}{len(done):>6}{len(todo):>7}  {cost:<46}{gpu_text:>28}")
    lines.append(f"to do on this machine: {_fmt_s(total_cpu)} of measured time"
                 + (f", plus {unknown} runs with no measurement yet" if unknown else "")
                 + " (sequential; divide by --workers for side-by-side runs, minus contention)")
    lines.append(f"whole plan as xlm-roberta-large on one A100: about {_fmt_s(total_gpu)} of GPU time"
                 + (f" (+{gpu_unknown} runs of unknown task)" if gpu_unknown else "")
                 + "; from GPU_THROUGHPUT_ESTIMATES_XLMR_LARGE_A100 in xfer_nb/estimates.py: FLOP-count estimates,"
                 " to be re-measured")
    return "\n".join(lines)
