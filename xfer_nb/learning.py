"""Did a training run learn its task? The learning threshold on held-out validation scores.

An intermediate model at chance tests drift, not intermediate-task transfer (DESIGN.md §7),
and a training loss near ln(3) says nothing a reviewer can check. So every training run is
scored on held-out data of its own task (the intermediate pool's reserved tail, or the target
task's English dev data) with the task's primary metric, in points, and it *learned* when that
score is at least chance + a margin. Chance is 100 / classes for sentence-pair classification
and 100 / choices for multiple choice; 0 for span F1 (tagging, QA). The margin is the run's
`learning_threshold` (points above chance), or the family default below. Runs that did not
learn are reported and kept out of the primary answer by the analysis.
"""
from __future__ import annotations

from xfer_nb import tasks

DEFAULT_MARGINS = {tasks.PAIR: 15.0, tasks.MULTIPLE_CHOICE: 15.0, tasks.TAGGING: 50.0, tasks.QA: 30.0}
FAMILY_DEFAULT = None  # learning_threshold value that means "the family's default margin"


def chance(task: str) -> float:
    """The primary-metric score of a constant guess, in points."""
    spec = tasks.TASKS[task]
    if spec.family in (tasks.PAIR, tasks.MULTIPLE_CHOICE):
        return 100.0 / len(spec.label_names)
    return 0.0


def margin(task: str, learning_threshold: float | None = FAMILY_DEFAULT) -> float:
    """Points above chance that count as learning: the run's setting, or the family default."""
    if learning_threshold is not None:
        return float(learning_threshold)
    family = tasks.TASKS[task].family
    if family not in DEFAULT_MARGINS:
        raise ValueError(f"task={task!r} ({family}) is not trained, so it has no learning threshold")
    return DEFAULT_MARGINS[family]


def verdict(task_names: list[str], score: float, learning_threshold: float | None = FAMILY_DEFAULT) -> dict:
    """{validation_score, chance, learning_threshold, learned} for a score that is the mean over
    `task_names` of each task's primary metric (one task, or the tasks of a multi-task run)."""
    n = len(task_names)
    floor = sum(chance(t) for t in task_names) / n
    needed = floor + sum(margin(t, learning_threshold) for t in task_names) / n
    return {"validation_score": round(float(score), 4), "chance": round(floor, 4),
            "learning_threshold": round(needed, 4), "learned": bool(score >= needed)}


def metric_rows(run_id: str, stage: str, task: str, outcome: dict, n_examples: int) -> list[dict]:
    """metrics.jsonl rows (split "validation") for a verdict: the score, chance, threshold and
    learned (1.0 / 0.0)."""
    base = {"run_id": run_id, "stage": stage, "task": task, "language": "en" if stage == "target" else "all",
            "split": "validation", "n_examples": n_examples}
    return [{**base, "metric": "validation_score", "value": outcome["validation_score"]},
            {**base, "metric": "chance", "value": outcome["chance"]},
            {**base, "metric": "learning_threshold", "value": outcome["learning_threshold"]},
            {**base, "metric": "learned", "value": 1.0 if outcome["learned"] else 0.0}]


def _verdict_language(rows: list[dict]) -> tuple[list[dict], str | None]:
    """A run's validation rows, and the language its verdict rows carry (the "learned" row's)."""
    validation = [r for r in rows if r.get("split") == "validation"]
    return validation, next((r.get("language") for r in validation if r.get("metric") == "learned"), None)


def from_metrics(rows: list[dict]) -> dict | None:
    """The verdict a run's metrics.jsonl rows record, or None when the run was not validated.
    The verdict's rows share one language ("all", or "en" for a target run); a mixed set's
    per-language validation rows beside them are not the verdict."""
    validation, language = _verdict_language(rows)
    found = {r["metric"]: r["value"] for r in validation if r.get("language") == language}
    if "learned" not in found:
        return None
    return {"validation_score": found.get("validation_score"), "chance": found.get("chance"),
            "learning_threshold": found.get("learning_threshold"), "learned": bool(found["learned"])}


def by_language(rows: list[dict]) -> dict[str, float]:
    """{language: validation score} of a mixed set's per-language validation rows (written
    beside the pooled verdict by the intermediate stage); {} for a run without them."""
    validation, verdict = _verdict_language(rows)
    return {r["language"]: r["value"] for r in validation
            if r.get("metric") == "validation_score" and r.get("language") != verdict}


def done_fields(run_dir) -> dict:
    """What DONE.json records of a finished run's verdict ({} for runs that train nothing)."""
    from pathlib import Path
    from xfer_nb import io
    path = Path(run_dir) / "metrics.jsonl"
    found = from_metrics(io.read_jsonl(path)) if path.is_file() else None
    return {} if found is None else {"validation_score": found["validation_score"], "learned": found["learned"]}
