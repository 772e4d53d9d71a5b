"""Figures and tables of the study, from the tidy results table or the gains table.

Every function takes a table and returns a ``matplotlib.figure.Figure`` built without
pyplot (no global state; it renders in notebooks and saves with any backend), with
labelled axes (units included), a title and a legend or panel titles that name the
resource tiers. ``save`` writes PNG and SVG atomically.

Inputs: the tidy table (columns ``run_id, stage, task, language, split, metric, value,
n_examples, seen, seed, intermediate_task, intermediate_size, language_set,
intermediate_languages, model_name_or_path, tier, distance``) or the output of
``xfer_nb.stats.paired_gains`` (the same columns plus ``baseline`` and ``gain``).
Column names that matter are parameters.

Aggregation: a point, bar or cell is the mean gain over seeds and languages; its interval
is the seed-level 95% interval of ``stats.seed_level`` (seed as the unit, languages as a
crossed random effect), the same as the significance table's, and "n = S×L" on it gives the
seeds and languages behind it. With 2-3 seeds those intervals are wide: that is what the
data support. The study figures (``plot_task_gains``, ``plot_size_curve``,
``plot_language_sets``, ``plot_distance``) show zero-shot languages only (English and
languages seen in the intermediate data are left out, or drawn in their own panel), put
each target task in its own panel on its own scale, and return ``(figure, caption)``: the
caption says what is plotted over which units. Where a task reports several metrics, only
its primary metric is used (``primary_metric``).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from . import stats
from .languages import TIERS

TIER_LABELS = {"low": "low (Joshi 0–2)", "mid": "mid (Joshi 3)", "high": "high (Joshi 4–5)"}
_PAL = sns.color_palette("colorblind")
TIER_COLORS = {"low": _PAL[3], "mid": _PAL[2], "high": _PAL[0]}
TIER_LEGEND_TITLE = "resource tier"
# preferred metric per task when a task reports several (first match wins)
PREFERRED_METRICS: tuple[str, ...] = ("accuracy", "acc", "f1", "macro_f1", "exact_match", "em")


# ------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------

def _filter(df: pd.DataFrame, where: Mapping | None) -> pd.DataFrame:
    if not where:
        return df
    mask = pd.Series(True, index=df.index)
    for col, val in where.items():
        vals = list(val) if isinstance(val, (list, tuple, set)) else [val]
        mask &= df[col].isin(vals)
    return df[mask]


def primary_metric(df: pd.DataFrame, task_col: str = "task", metric_col: str = "metric") -> pd.DataFrame:
    """Keep one metric per target task: XTREME's headline metric
    (``xfer_nb.evaluate.PRIMARY_METRIC``: F1 for UD-POS, PAN-X, QA and BUCC, accuracy for
    the rest) when the task reports it, else the first of ``PREFERRED_METRICS``, else its
    alphabetically first metric."""
    from .evaluate import PRIMARY_METRIC
    if metric_col not in df.columns:
        return df
    keep = {}
    for task, ms in df.groupby(task_col)[metric_col].unique().items() if task_col in df.columns \
            else [(None, df[metric_col].unique())]:
        ms = sorted(map(str, ms))
        preferred = (PRIMARY_METRIC.get(task), *PREFERRED_METRICS)
        keep[task] = next((m for m in preferred if m in ms), ms[0])
    if task_col not in df.columns:
        return df[df[metric_col].astype(str) == keep[None]]
    return df[df[metric_col].astype(str) == df[task_col].map(keep)]


def _tiers_present(df: pd.DataFrame, tier_col: str) -> list[str]:
    present = set(df[tier_col].dropna().astype(str))
    return [t for t in TIERS if t in present] + sorted(present - set(TIERS))


def _size_label(n: float) -> str:
    """250 -> "250", 1000 -> "1k", 16000 -> "16k", 1500000 -> "1.5M"; a size that is not a
    round multiple (4096, 16384) is written out with a thousands separator, never "4.096k"."""
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if n >= div and float(n / div * 10).is_integer():
            return f"{n / div:g}{suffix}"
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:g}"


def _y_label(y: str, unit: str) -> str:
    if y == "gain":
        return f"gain over baseline ({unit})"
    return f"score ({unit})"


def _default_language_set(df: pd.DataFrame, set_col: str, language_set) -> pd.DataFrame:
    """Rows of one language set (`language_set`, else "en" when several sets are present);
    baseline rows (no intermediate task) are always kept."""
    if set_col not in df.columns:
        return df
    if language_set is None:
        sets = set(df.loc[~_is_baseline(df), set_col])
        if len(sets) <= 1 or "en" not in sets:
            return df
        language_set = "en"
    wanted = [language_set] if isinstance(language_set, str) else list(language_set)
    return df[df[set_col].isin(wanted) | _is_baseline(df)]


def _set_order(df: pd.DataFrame, set_col: str, langs_col: str = "intermediate_languages") -> list[str]:
    """Language sets from the smallest (fewest languages) to the largest, then by name."""
    names = sorted(set(df[set_col].astype(str)))
    if langs_col not in df.columns:
        return names
    count = df.groupby(df[set_col].astype(str))[langs_col].first().astype(str).str.count(",")
    return sorted(names, key=lambda n: (count.get(n, 0), n))


def _is_baseline(df: pd.DataFrame) -> pd.Series:
    try:
        return stats.baseline_mask(df)
    except KeyError:
        return pd.Series(False, index=df.index)


def _tier_legend(ax, tiers: Sequence[str], title: str = TIER_LEGEND_TITLE, **kw):
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=TIER_COLORS.get(t, "grey"), label=TIER_LABELS.get(t, t)) for t in tiers]
    return ax.legend(handles=handles, title=title, **kw)


# ------------------------------------------------------------------------------------
# seed-level cells and in-task pairs
# ------------------------------------------------------------------------------------

# Intermediate-task names that are the target task's own task (or its training data).
IN_TASK: dict[str, tuple[str, ...]] = {
    "xnli": ("xnli", "nli", "mnli", "multinli", "anli", "xnli-extension"),
    "udpos": ("udpos", "pos", "ud", "udpos-en"),
    "panx": ("panx", "ner", "wikiann"),
    "pawsx": ("pawsx", "paws"),
    "xquad": ("squad", "xquad"), "mlqa": ("squad", "mlqa"), "tydiqa": ("tydiqa", "squad"),
}


def in_task(intermediate: str, target: str) -> bool:
    """Whether an intermediate task is the target task itself (e.g. NLI -> XNLI, pos -> udpos)."""
    return str(intermediate).lower() in IN_TASK.get(str(target).lower(), (str(target).lower(),))


def zero_shot(df: pd.DataFrame, language_col: str = "language", seen_col: str = "seen") -> pd.DataFrame:
    """Rows of languages other than English that the intermediate data did not contain."""
    mask = df[language_col] != "en"
    if seen_col in df.columns:
        mask &= ~df[seen_col].astype(bool)
    return df[mask]


def seed_cells(df: pd.DataFrame, keys: Sequence[str], y: str = "gain") -> pd.DataFrame:
    """Per group of `keys`: mean, seed-level 95% interval, seeds and languages."""
    rows = []
    for key, g in df.groupby(list(keys), dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        r = stats.seed_level(g, value=y, item=("task", "language"))
        mean = float(g.groupby("seed")[y].mean().mean()) if len(g) else np.nan
        rows.append({**dict(zip(keys, key)), "mean": r["estimate"] if r["n_seeds"] else mean,
                     "low": r["ci_low"], "high": r["ci_high"], "n_seeds": int(r["n_seeds"] or g["seed"].nunique()),
                     "n_languages": int(r["n_languages"] or g["language"].nunique())})
    return pd.DataFrame(rows, columns=list(keys) + ["mean", "low", "high", "n_seeds", "n_languages"])


def _labelled(ax) -> bool:
    return any(l.get_label() and not l.get_label().startswith("_") for l in ax.get_lines())


def _n(r) -> str:
    return f"n={int(r['n_seeds'])}×{int(r['n_languages'])}"


CI_TEXT = "95% CI with the seed as the unit"


# ------------------------------------------------------------------------------------
# 1. gain per intermediate task x target task
# ------------------------------------------------------------------------------------

def plot_task_gains(gains: pd.DataFrame, row: str = "intermediate_task", col: str = "task", y: str = "gain",
                    tier_col: str = "tier", size_col: str = "intermediate_size", set_col: str = "language_set",
                    english_set: str | None = None, size: int | None = None, unit: str = "points",
                    where: Mapping | None = None) -> tuple[Figure, str]:
    """Heatmaps of the mean zero-shot gain per (intermediate task, target task), one panel per
    resource tier, each cell annotated with its seed-level 95% interval and n = seeds×languages;
    in-task cells (e.g. NLI -> XNLI) are outlined and starred. Size: `size`, else each
    intermediate task's largest size (named in the title). Language set: `english_set`, else
    "en" when several sets are present."""
    d = zero_shot(primary_metric(_filter(gains, where)))
    d = _default_language_set(d, set_col, english_set)
    if size is not None:
        d = d[d[size_col] == size]
    elif size_col in d.columns and len(d):
        d = d[d[size_col] == d.groupby(row)[size_col].transform("max")]
    if d.empty:
        raise ValueError("plot_task_gains: no zero-shot rows left after filtering")
    d = d.assign(**{row: d[row].astype(str), col: d[col].astype(str)})
    tiers = _tiers_present(d, tier_col)
    rows_, cols_ = sorted(d[row].unique()), sorted(d[col].unique())
    agg = seed_cells(d, [tier_col, row, col], y)
    lim = float(np.nanmax(np.abs(agg["mean"]))) if len(agg) else 1.0
    lim = lim if np.isfinite(lim) and lim > 0 else 1.0
    fig = Figure(figsize=(1.2 + 1.9 * len(cols_) * len(tiers) + 1.2, max(3.2, 1.9 + 0.9 * len(rows_))),
                 layout="constrained")
    axes = fig.subplots(1, len(tiers), sharey=True, squeeze=False)[0]
    from matplotlib.patches import Rectangle
    for i, (ax, t) in enumerate(zip(axes, tiers)):
        a = agg[agg[tier_col] == t]
        mat = a.pivot(index=row, columns=col, values="mean").reindex(index=rows_, columns=cols_)
        labels = mat.copy().astype(object)
        for _, r in a.iterrows():
            ci = "" if not np.isfinite(r["low"]) else f"\n[{r['low']:+.1f}, {r['high']:+.1f}]"
            labels.loc[r[row], r[col]] = (f"{r['mean']:+.1f}{'*' if in_task(r[row], r[col]) else ''}{ci}\n{_n(r)}")
        labels = labels.where(mat.notna(), "")
        with warnings.catch_warnings():  # seaborn 0.13 calls a deprecated cmap.set_bad
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            sns.heatmap(mat, ax=ax, cmap="vlag", center=0.0, vmin=-lim, vmax=lim, annot=labels.to_numpy(), fmt="",
                        annot_kws={"fontsize": 7}, linewidths=0.5, linecolor="white", cbar=i == len(tiers) - 1,
                        cbar_kws={"label": f"mean zero-shot gain ({unit})"} if i == len(tiers) - 1 else None)
        for ri, rn in enumerate(rows_):
            for ci_, cn in enumerate(cols_):
                if in_task(rn, cn) and pd.notna(mat.loc[rn, cn]):
                    ax.add_patch(Rectangle((ci_, ri), 1, 1, fill=False, edgecolor="black", linewidth=1.6))
        ax.set_title(f"{TIER_LABELS.get(t, t)} languages", color=TIER_COLORS.get(t, "black"))
        ax.set_xlabel("target task")
        ax.set_ylabel("intermediate task" if i == 0 else "")
        ax.tick_params(axis="x", labelrotation=45)
        ax.tick_params(axis="y", labelrotation=0)
    sizes = d.groupby(row)[size_col].max() if size_col in d.columns else pd.Series(dtype=float)
    size_txt = (f"{int(size):,} intermediate examples" if size is not None else
                "largest size: " + ", ".join(f"{k} {int(v):,}" for k, v in sizes.items()))
    fig.suptitle(f"Zero-shot gain over the baseline ({unit}) by intermediate and target task, at {size_txt}")
    if any(in_task(r, c) for r in rows_ for c in cols_):
        # supxlabel, not fig.text: constrained layout makes room for it below the axes' labels
        fig.supxlabel("* framed: in-task pair (the intermediate task is the target task)", x=0.01, ha="left",
                      fontsize=7)
    caption = (f"Each cell: mean gain over the no-intermediate baseline ({unit} of the target task's primary metric) "
               f"on zero-shot languages (English and languages seen in the intermediate data excluded) of one tier; "
               f"in brackets the {CI_TEXT}; n = seeds × languages. * and a black frame: in-task pairs (the intermediate "
               f"task is the target task), expected to help. Intermediate data: {size_txt}.")
    return fig, caption


# ------------------------------------------------------------------------------------
# 2. gain vs intermediate size, one panel per target task
# ------------------------------------------------------------------------------------

def plot_size_curve(data: pd.DataFrame, y: str = "gain", x: str = "intermediate_size", hue: str = "tier",
                    col: str = "task", size_task: str | None = None, english: bool = True, unit: str = "points",
                    where: Mapping | None = None) -> tuple[Figure, str]:
    """Mean zero-shot gain against the number of intermediate examples (log axis), one panel
    per target task on its own scale, one colour per tier: the per-size means with their
    seed-level 95% intervals and n, and the line fitted from per-seed slopes (mean over seeds
    of each seed's least-squares fit on log2 size), so a shape that is not log-linear shows."""
    d = zero_shot(primary_metric(_filter(data, where)))
    d = d[pd.to_numeric(d[x], errors="coerce") > 0]
    if d.empty:
        raise ValueError("plot_size_curve: no zero-shot rows with a positive size")
    panels = sorted(d[col].astype(str).unique())
    fig = Figure(figsize=(4.3 * len(panels) + 1.8, 3.9), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    tiers = _tiers_present(d, hue)
    offsets = {t: 1.0 + 0.09 * (i - (len(tiers) - 1) / 2) for i, t in enumerate(tiers)}
    for ax, p in zip(axes, panels):
        dp = d[d[col].astype(str) == p]
        agg = seed_cells(dp, [hue, x], y)
        for t in tiers:
            a = agg[agg[hue] == t].sort_values(x)
            if not len(a):
                continue
            c = TIER_COLORS.get(t, "grey")
            xs = a[x].astype(float) * offsets[t]
            err = np.vstack([a["mean"] - a["low"], a["high"] - a["mean"]])
            ax.errorbar(xs, a["mean"], yerr=np.where(np.isfinite(err), err, 0), fmt="o", color=c, capsize=3)
            for xx, (_, r) in zip(xs, a.iterrows()):
                ax.annotate(_n(r), (xx, r["mean"]), fontsize=6, xytext=(4, 0), textcoords="offset points", color=c,
                            va="center")
            per_seed = dp[dp[hue] == t].groupby(["seed", x])[y].mean().reset_index()
            fits = []
            for _, sg in per_seed.groupby("seed"):
                if sg[x].nunique() >= 2:
                    fits.append(np.polyfit(np.log2(sg[x].astype(float)), sg[y].astype(float), 1))
            if len(fits) >= 2:   # one seed's line is not an estimate: the seed is the unit
                slope, intercept = np.mean(fits, axis=0)
                grid_x = np.geomspace(float(a[x].min()), float(a[x].max()), 20)
                ax.plot(grid_x, intercept + slope * np.log2(grid_x), color=c, linewidth=1.2,
                        label=f"{t}: {slope:+.2f} per doubling ({len(fits)} seeds)")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ticks = sorted(set(dp[x].astype(float)))
        ax.set_xticks(ticks, [_size_label(v) for v in ticks])
        ax.minorticks_off()
        ax.set_xlabel("intermediate examples (log scale)")
        metric = dp["metric"].iloc[0] if "metric" in dp.columns else ""
        ax.set_ylabel(f"zero-shot gain ({unit} of {metric})" if metric else _y_label(y, unit))
        ax.set_title(f"target task: {p}")
        if _labelled(ax):
            ax.legend(title="fitted line", fontsize="x-small", title_fontsize="x-small", loc="upper left")
    from matplotlib.patches import Patch
    fig.legend(handles=[Patch(facecolor=TIER_COLORS.get(t, "grey"), label=TIER_LABELS.get(t, t)) for t in tiers],
               title=TIER_LEGEND_TITLE, loc="outside right upper", fontsize="small")
    what = f"{'English ' if english else ''}{size_task} data" if size_task else "intermediate data"
    fig.suptitle(f"Zero-shot gain vs. size of the {what}, per target task and resource tier")
    caption = (f"Points: mean gain over the baseline ({unit} of each task's primary metric) on zero-shot languages "
               f"(English and seen languages excluded) at each size of the {what}, with the {CI_TEXT} and n = seeds × "
               f"languages; points of different tiers are nudged sideways to stay apart. Lines: the mean over seeds of "
               f"each seed's least-squares line of gain on log2 size (its slope is the gain per doubling), drawn only where "
               f"at least 2 seeds have 2 or more sizes.")
    return fig, caption


# ------------------------------------------------------------------------------------
# 3. gain per language set, seen vs unseen, per target task
# ------------------------------------------------------------------------------------

def plot_language_sets(gains: pd.DataFrame, y: str = "gain", set_col: str = "language_set", seen_col: str = "seen",
                       tier_col: str = "tier", size_col: str = "intermediate_size", size: int | None = None,
                       order: Sequence[str] | None = None, unit: str = "points",
                       where: Mapping | None = None) -> tuple[Figure, str]:
    """Mean gain per intermediate language set at one size, bars per tier with seed-level 95%
    intervals and n: one row of panels per target task, columns languages seen in the
    intermediate data and unseen ones (English left out of both). Size: `size`, else the
    largest size every language set has."""
    d = primary_metric(_filter(gains, where))
    if seen_col not in d.columns:
        from .languages import annotate
        d = annotate(d)
    d = d[d["language"] != "en"]
    if size is None and size_col in d.columns:
        common = set.intersection(*(set(g[size_col]) for _, g in d.groupby(set_col)))
        if not common:
            raise ValueError("no intermediate size is shared by all language sets; pass size=")
        size = max(common)
    if size is not None:
        d = d[d[size_col] == size]
    sets = list(order) if order else _set_order(d, set_col)
    tiers = _tiers_present(d, tier_col)
    # a target trained after one language set only has nothing to compare across sets
    tasks = sorted(t for t, g in d.groupby(d["task"].astype(str)) if g[set_col].nunique() > 1)
    if not tasks:
        raise ValueError("plot_language_sets: no target task was trained after two or more language sets")
    fig = Figure(figsize=(max(7.0, 1.3 * len(sets) * 2 + 2.5), 2.9 * len(tasks) + 0.8), layout="constrained")
    axes = fig.subplots(len(tasks), 2, squeeze=False)
    width = 0.8 / max(1, len(tiers))
    x = np.arange(len(sets))
    for ti, task in enumerate(tasks):
        dt = d[d["task"].astype(str) == task]
        seen = dt[seen_col].astype(bool)
        for ax, flag, name in ((axes[ti, 0], True, "seen in the intermediate data"),
                               (axes[ti, 1], False, "unseen (zero-shot)")):
            agg = seed_cells(dt[seen == flag].assign(**{set_col: dt[set_col].astype(str)}), [set_col, tier_col], y)
            for j, t in enumerate(tiers):
                a = agg[agg[tier_col] == t].set_index(set_col).reindex(sets)
                err = np.vstack([a["mean"] - a["low"], a["high"] - a["mean"]])
                xs = x - 0.4 + width * (j + 0.5)
                ax.bar(xs, a["mean"], width, color=TIER_COLORS.get(t, "grey"),
                       yerr=np.where(np.isfinite(err), err, 0), capsize=3)
                for xx, (_, r) in zip(xs, a.iterrows()):
                    if np.isfinite(r["mean"]):
                        ax.annotate(f"n={int(r['n_seeds'])}×{int(r['n_languages'])}", (xx, 0), fontsize=6,
                                    ha="center", va="top", xytext=(0, -2), textcoords="offset points", rotation=90)
            ax.axhline(0, color="black", linewidth=0.8)
            ax.set_xticks(x, sets, rotation=20, ha="right", rotation_mode="anchor")
            n_lang = dt.loc[seen == flag, "language"].nunique()
            ax.set_title(f"{task}: {name} ({n_lang} languages)", fontsize=10)
            ax.set_ylabel(f"gain ({unit})")
        axes[ti, 0].sharey(axes[ti, 1])
    for ax in axes[-1]:
        ax.set_xlabel("intermediate language set")
    _tier_legend(axes[0, 1], tiers, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    size_txt = f"{int(size):,} intermediate examples" if size is not None else "all sizes"
    fig.suptitle(f"Gain over the baseline per intermediate language set at {size_txt}")
    caption = (f"Bars: mean gain over the baseline ({unit} of each task's primary metric) per intermediate language set "
               f"at {size_txt}, per resource tier, on languages the set contains (left) and zero-shot languages it does "
               f"not (right); English is in neither. Error bars: {CI_TEXT}; n = seeds × languages under each bar.")
    return fig, caption


# ------------------------------------------------------------------------------------
# 4. gain vs typological distance, per target task
# ------------------------------------------------------------------------------------

SET_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def plot_distance(gains: pd.DataFrame, x: str = "distance", y: str = "gain", hue: str = "tier",
                  language_col: str = "language", set_col: str = "language_set", annotate: bool = True,
                  unit: str = "points",
                  x_label: str = "URIEL distance to the nearest intermediate language (0–1)",
                  where: Mapping | None = None) -> tuple[Figure, str]:
    """Per-(language, language set) mean zero-shot gain against the language's URIEL distance
    to the set, one panel per target task, colour = tier, marker = language set, with a
    least-squares line over the points."""
    d = primary_metric(_filter(gains, where))
    if x not in d.columns or hue not in d.columns:
        from .languages import annotate as _annotate
        d = _annotate(d)
    d = zero_shot(d[d[x].notna()])
    if d.empty:
        raise ValueError("plot_distance: no zero-shot rows with a distance")
    tasks = sorted(d["task"].astype(str).unique())
    sets = sorted(d[set_col].astype(str).unique()) if set_col in d.columns else ["all"]
    markers = {s: SET_MARKERS[i % len(SET_MARKERS)] for i, s in enumerate(sets)}
    fig = Figure(figsize=(4.6 * len(tasks) + 2.2, 4.2), layout="constrained")
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    keys = [language_col, hue, x] + ([set_col] if set_col in d.columns else [])
    for ax, task in zip(axes, tasks):
        pts = d[d["task"].astype(str) == task].groupby(keys, dropna=False)[y].mean().reset_index()
        if len(pts) >= 2 and pts[x].nunique() >= 2:
            slope, intercept = np.polyfit(pts[x].astype(float), pts[y].astype(float), 1)
            xs = np.linspace(float(pts[x].min()), float(pts[x].max()), 10)
            ax.plot(xs, intercept + slope * xs, color="black", linewidth=1.0,
                    label=f"least squares ({slope / 10:+.2f} {unit} per 0.1)")
        for _, r in pts.iterrows():
            ax.scatter(r[x], r[y], color=TIER_COLORS.get(r[hue], "grey"), marker=markers.get(str(r.get(set_col)), "o"),
                       s=30, edgecolor="white", linewidth=0.5)
            if annotate:
                ax.annotate(str(r[language_col]), (r[x], r[y]), fontsize=6, xytext=(3, 2), textcoords="offset points")
        ax.axhline(0, color="black", linewidth=0.6, linestyle=":")
        ax.set_xlabel(x_label)
        ax.set_ylabel(_y_label(y, unit))
        ax.set_title(f"target task: {task}")
        if _labelled(ax):
            ax.legend(fontsize="x-small", loc="lower left")
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], linestyle="", marker="o", color=TIER_COLORS.get(t, "grey"), label=TIER_LABELS.get(t, t))
               for t in _tiers_present(d, hue)]
    handles += [Line2D([], [], linestyle="", marker=markers[s], color="dimgrey", label=f"set {s}") for s in sets]
    fig.legend(handles=handles, loc="outside right upper", fontsize="small", title="tier / language set")
    fig.suptitle("Zero-shot gain per evaluation language vs. distance to the intermediate languages")
    caption = ("Each point: one (evaluation language, intermediate language set), its gain over the baseline averaged "
               f"over seeds and intermediate sizes ({unit} of the task's primary metric), zero-shot languages only; colour is the language's "
               "tier, the marker its language set. The line is a least-squares fit over the points, descriptive only: "
               "the significance table's distance rows, present when a language is seen at two distances (from "
               "several language sets), test the slope with the seed as the unit and a random intercept per language.")
    return fig, caption


# ------------------------------------------------------------------------------------
# 5. per-language table
# ------------------------------------------------------------------------------------

def language_table(df: pd.DataFrame, task: str, value: str = "value", metric: str | None = None,
                   columns: Sequence[str] = ("intermediate_task", "intermediate_size", "language_set"),
                   task_col: str = "task", language_col: str = "language", tier_col: str = "tier",
                   style: bool = False, decimals: int = 1):
    """Per-language results of one target task: rows (tier, language) in tier order, one
    column per configuration (the `columns` present), cells the mean over seeds of
    `value` (use value="gain" on a gains table). `metric`: default the task's primary
    metric. style=True returns a pandas Styler with a colour gradient per column."""
    d = df[df[task_col] == task]
    if d.empty:
        raise ValueError(f"no rows for task {task!r}; tasks: {sorted(df[task_col].unique())}")
    d = d[d["metric"] == metric] if metric is not None else primary_metric(d)
    if tier_col not in d.columns:
        from . import languages
        d = d.assign(**{tier_col: [languages.tier(c) for c in d[language_col]]})
    cols = [c for c in columns if c in d.columns]
    tab = d.pivot_table(index=[tier_col, language_col], columns=cols or None, values=value,
                        aggfunc="mean")
    order = {t: i for i, t in enumerate(TIERS)}
    tab = tab.sort_index(key=lambda s: s.map(order).fillna(len(TIERS)) if s.name == tier_col else s)
    tab = tab.round(decimals)
    if not style:
        return tab
    cmap = "vlag" if value == "gain" else "crest"
    return tab.style.format(f"{{:.{decimals}f}}", na_rep="–").background_gradient(cmap=cmap, axis=0)


# ------------------------------------------------------------------------------------
# saving
# ------------------------------------------------------------------------------------

def save(fig: Figure, name: str, out_dir: str | os.PathLike, formats: Sequence[str] = ("png", "svg"),
         dpi: int = 150) -> list[Path]:
    """Write `fig` as <out_dir>/<name>.<format> for each format, each through a
    temporary file renamed into place; returns the paths."""
    from .io import atomic_path

    out_dir = Path(out_dir)
    paths = []
    for fmt in formats:
        path = out_dir / f"{name}.{fmt}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
        paths.append(path)
    return paths
