"""Small tables and figures the stage notebooks show (the study's figures are in plots.py)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from xfer_nb import languages


def examples(prepared, n: int = 2) -> pd.DataFrame:
    """The first `n` examples of each task and language, as a readable table."""
    frames = []
    for task, ds in prepared.sets.items():
        frame = ds.to_pandas()
        frame.insert(0, "task", task)
        frames.append(frame.groupby("language", sort=True).head(n))
    table = pd.concat(frames, ignore_index=True)
    return table.drop(columns=[c for c in ("id",) if c in table])


def length_histogram(prepared):
    from xfer_nb.pipeline import _words
    from xfer_nb.tasks import TASKS
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for task, ds in prepared.sets.items():
        family = TASKS[task].family
        frame = pd.DataFrame({"language": ds["language"], "words": [_words(r, family) for r in ds]})
        for lang, group in frame.groupby("language"):
            ax.hist(group["words"], bins=30, alpha=0.5, label=f"{task}/{lang}")
    ax.set_xlabel("example length (words)")
    ax.set_ylabel("examples")
    ax.set_title("Intermediate data: lengths per language")
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    return fig


def loss_curve(log: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(6, 3.2))
    if log is not None and len(log):
        ax.plot(log["step"], log["loss"], marker=".")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (mean over logging interval)")
    ax.set_title("Training loss")
    fig.tight_layout()
    return fig


def score_table(scores: pd.DataFrame):
    """Languages as rows, metrics as columns, with tier and seen/unseen: a styled table
    with no index column and one decimal (scores are in %), as a notebook shows it."""
    if scores.empty:
        return scores
    table = scores.pivot_table(index=["language", "seen"], columns="metric", values="value").reset_index()
    table.insert(1, "tier", table["language"].map(_tier))
    table.columns.name = None  # else the pivot's "metric" label sits above the first column
    rank = {"low": 0, "mid": 1, "high": 2}
    table = table.sort_values(["tier", "language"], key=lambda s: s.map(rank).fillna(3) if s.name == "tier" else s)
    table = table.reset_index(drop=True)
    return (table.style.hide(axis="index").format(precision=1)
            .set_caption("Zero-shot scores per language (%)").set_table_attributes('class="score-table"'))


def language_scores(scores: pd.DataFrame, metric: str | None = None):
    """Bar chart of one metric per language, coloured by resource tier."""
    if "split" in scores.columns:   # the run's own validation rows are not zero-shot scores
        scores = scores[scores["split"] != "validation"]
    fig, ax = plt.subplots(figsize=(max(5, 0.35 * scores["language"].nunique() + 2) + 1.5, 3.4))  # + the legend
    if scores.empty:
        return fig
    if metric is None:
        from xfer_nb.evaluate import PRIMARY_METRIC
        primary = PRIMARY_METRIC.get(str(scores["task"].iloc[0]))
        metric = primary if primary in set(scores["metric"]) else scores["metric"].iloc[0]
    rows = scores[scores["metric"] == metric].copy()
    rows["tier"] = rows["language"].map(_tier)
    order = {"low": 0, "mid": 1, "high": 2}
    rows = rows.sort_values(by=["tier", "value"], key=lambda s: s.map(order) if s.name == "tier" else s)
    colours = {"low": "tab:red", "mid": "tab:orange", "high": "tab:blue", "unknown": "tab:gray"}
    ax.bar(rows["language"], rows["value"], color=[colours[t] for t in rows["tier"]])
    from matplotlib.patches import Patch
    handles = [Patch(color=colour, label=f"{tier}-resource" if tier != "unknown" else "tier unknown")
               for tier, colour in colours.items() if tier in set(rows["tier"])]  # (empty bars drew every key blue)
    ax.set_xlabel("evaluation language")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(f"{rows['task'].iloc[0]}: zero-shot {metric} per language")
    ax.legend(handles=handles, title="resource tier", fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside, never over a bar
    fig.tight_layout()
    return fig


def _tier(lang: str) -> str:
    try:
        return languages.tier(lang)
    except KeyError:
        return "unknown"
