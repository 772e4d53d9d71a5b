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

Aggregation: a point or bar is the mean over (seed, language) units, each unit first
averaged over what else the point pools (target tasks, ...); its band or error bar is the
Student-t 95% interval over those units (``stats.mean_ci``), the same unit as the
significance tables. With the 2–3 seeds a study can afford, an interval over seeds alone
(t with 1–2 degrees of freedom) is too wide to read. Where a task reports several
metrics, only its primary metric is used (``primary_metric``).
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


CI_UNITS: tuple[str, ...] = ("seed", "language")
CI_TEXT = "95% CI over seed × language"


def _unit_ci(df: pd.DataFrame, keys: Sequence[str], y: str, units: Sequence[str] = CI_UNITS) -> pd.DataFrame:
    """Per group of `keys`: the mean of per-unit means (units: the `units` columns present)
    with a Student-t 95% interval over the units."""
    keys = list(keys)
    units = [u for u in units if u in df.columns and u not in keys]
    per_unit = df.groupby(keys + units, dropna=False)[y].mean().reset_index() if units else df[keys + [y]]
    rows = []
    for key, g in per_unit.groupby(keys, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        m, lo, hi = stats.mean_ci(g[y])
        rows.append({**dict(zip(keys, key)), "mean": m, "low": lo, "high": hi, "n_units": len(g)})
    return pd.DataFrame(rows, columns=keys + ["mean", "low", "high", "n_units"])


def _size_label(n: float) -> str:
    """250 -> "250", 1000 -> "1k", 16000 -> "16k", 1500000 -> "1.5M"."""
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:g}{suffix}"
    return f"{n:g}"


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


MIN_UNITS_IN_VIEW = 4  # a t interval over 2-3 units (t = 12.7 / 4.3) may run past the axes


def _fit_ylim(ax, aggs: Sequence[pd.DataFrame], with_zero: bool) -> bool:
    """Fit the y range to every mean and to the intervals of at least MIN_UNITS_IN_VIEW
    units, so that one language with two seeds does not flatten every other curve.
    Returns whether some interval runs past the range."""
    a = pd.concat([g for g in aggs if g is not None and len(g)], ignore_index=True) if aggs else pd.DataFrame()
    if a.empty:
        return False
    wide = a["n_units"] >= MIN_UNITS_IN_VIEW
    vals = pd.concat([a["mean"], a.loc[wide, "low"], a.loc[wide, "high"]]).dropna()
    if with_zero:
        vals = pd.concat([vals, pd.Series([0.0])])
    lo, hi = float(vals.min()), float(vals.max())
    pad = max(0.08 * (hi - lo), 0.5)
    lo, hi = lo - pad, hi + pad
    ax.set_ylim(lo, hi)
    return bool(((a["low"] < lo) | (a["high"] > hi)).any())


def _note_clipped(ax, aggs: Sequence[pd.DataFrame], with_zero: bool) -> None:
    """_fit_ylim, and a note in the corner when an interval runs past the range."""
    if _fit_ylim(ax, aggs, with_zero):
        ax.annotate(f"intervals of fewer than {MIN_UNITS_IN_VIEW} units run past the edge", (0.01, 0.01),
                    xycoords="axes fraction", fontsize=7, color="dimgrey")


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
# 1. gain per intermediate task x target task
# ------------------------------------------------------------------------------------

def plot_task_gains(gains: pd.DataFrame, row: str = "intermediate_task", col: str = "task",
                    y: str = "gain", tier_col: str = "tier", size_col: str = "intermediate_size",
                    set_col: str = "language_set", size: int | None = None,
                    language_set: str | None = None, kind: str = "heatmap", unit: str = "points",
                    where: Mapping | None = None) -> Figure:
    """Mean gain per (intermediate task, target task), one panel per resource tier.

    kind="heatmap": annotated heatmaps (rows intermediate tasks, columns target tasks),
    one per tier, on one diverging colour scale centred at 0; the panel titles name the
    tiers. kind="bars": one panel per intermediate task, bars per target task coloured by
    tier (legend), each bar annotated with its value and a t-interval over seed × language.
    Size: `size`, else each intermediate task's largest size. Language set:
    `language_set`, else "en" when several sets are present."""
    d = primary_metric(_filter(gains, where))
    d = _default_language_set(d, set_col, language_set)
    if size is not None:
        d = d[d[size_col] == size]
    elif size_col in d.columns:
        d = d[d[size_col] == d.groupby(row)[size_col].transform("max")]
    if d.empty:
        raise ValueError("plot_task_gains: no rows left after filtering")
    tiers = _tiers_present(d, tier_col)
    rows_ = sorted(d[row].astype(str).unique())
    cols_ = sorted(d[col].astype(str).unique())
    agg = _unit_ci(d.assign(**{row: d[row].astype(str), col: d[col].astype(str)}),
                   [tier_col, row, col], y)
    what = "gain over baseline" if y == "gain" else "score"
    if kind == "heatmap":
        lim = float(np.nanmax(np.abs(agg["mean"]))) or 1.0
        fig = Figure(figsize=(1.0 + 1.1 * len(cols_) * len(tiers) + 1.2, max(3.0, 1.8 + 0.55 * len(rows_))),
                     layout="constrained")
        axes = fig.subplots(1, len(tiers), sharey=True, squeeze=False)[0]
        for i, (ax, t) in enumerate(zip(axes, tiers)):
            mat = agg[agg[tier_col] == t].pivot(index=row, columns=col, values="mean") \
                .reindex(index=rows_, columns=cols_)
            with warnings.catch_warnings():  # seaborn 0.13 calls a deprecated cmap.set_bad
                warnings.simplefilter("ignore", PendingDeprecationWarning)
                sns.heatmap(mat, ax=ax, cmap="vlag", center=0.0, vmin=-lim, vmax=lim, annot=True,
                            fmt=".1f", annot_kws={"fontsize": 8}, linewidths=0.5, linecolor="white",
                            cbar=i == len(tiers) - 1,
                            cbar_kws={"label": f"{what} ({unit})"} if i == len(tiers) - 1 else None)
            ax.set_title(f"{TIER_LABELS.get(t, t)} languages", color=TIER_COLORS.get(t, "black"))
            ax.set_xlabel("target task")
            ax.set_ylabel("intermediate task" if i == 0 else "")
            ax.tick_params(axis="x", labelrotation=45)
            ax.tick_params(axis="y", labelrotation=0)
        fig.suptitle(f"Mean {what} ({unit}) by intermediate and target task, per resource tier")
        return fig
    if kind != "bars":
        raise ValueError(f"kind must be 'heatmap' or 'bars', got {kind!r}")
    fig = Figure(figsize=(max(6.0, 0.9 * len(cols_) * len(tiers) + 2), 2.6 * len(rows_) + 0.8),
                 layout="constrained")
    axes = fig.subplots(len(rows_), 1, sharex=True, squeeze=False)[:, 0]
    width = 0.8 / len(tiers)
    x = np.arange(len(cols_))
    for ax, r in zip(axes, rows_):
        for j, t in enumerate(tiers):
            a = agg[(agg[row] == r) & (agg[tier_col] == t)].set_index(col).reindex(cols_)
            xs = x - 0.4 + width * (j + 0.5)
            err = np.vstack([a["mean"] - a["low"], a["high"] - a["mean"]])
            bars = ax.bar(xs, a["mean"], width, color=TIER_COLORS.get(t, "grey"),
                          yerr=np.where(np.isnan(err), 0, err), capsize=2)
            ax.bar_label(bars, labels=[("" if np.isnan(v) else f"{v:.1f}") for v in a["mean"]],
                         fontsize=7, padding=2)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(f"intermediate task: {r}")
        ax.set_ylabel(f"{what} ({unit})")
    axes[-1].set_xticks(x, cols_, rotation=45)
    axes[-1].set_xlabel("target task")
    _tier_legend(axes[0], tiers, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"Mean {what} ({unit}) by intermediate and target task")
    return fig


# ------------------------------------------------------------------------------------
# 2. score or gain vs intermediate size
# ------------------------------------------------------------------------------------

def plot_size_curve(data: pd.DataFrame, y: str = "gain", x: str = "intermediate_size",
                    hue: str = "tier", col: str | None = None, set_col: str = "language_set",
                    language_set: str | None = None, unit: str = "points",
                    where: Mapping | None = None, title_note: str = "") -> Figure:
    """Score or gain against the number of intermediate examples (log x axis), one line
    per resource tier with a 95% t band over seed × language; `col` makes one panel per value (e.g.
    "task"). With y="value" (the tidy table), size-0 rows are the no-intermediate baseline
    and are drawn as dashed horizontal lines. `title_note` is appended to the title."""
    d = primary_metric(_filter(data, where))
    d = _default_language_set(d, set_col, language_set)
    panels = sorted(d[col].astype(str).unique()) if col else [None]
    fig = Figure(figsize=(4.2 * len(panels) + 1.8, 3.8), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    tiers = _tiers_present(d, hue)
    drawn = []
    for ax, p in zip(axes, panels):
        dp = d if p is None else d[d[col].astype(str) == p]
        sizes = pd.to_numeric(dp[x], errors="coerce")
        pos, base = dp[sizes > 0], dp[sizes == 0]
        agg = _unit_ci(pos, [hue, x], y)
        bagg = _unit_ci(base, [hue], y) if len(base) else None
        drawn += [agg] + ([bagg] if bagg is not None else [])
        for t in tiers:
            a = agg[agg[hue] == t].sort_values(x)
            c = TIER_COLORS.get(t, "grey")
            if len(a):
                ax.plot(a[x], a["mean"], marker="o", color=c, label=TIER_LABELS.get(t, t))
                ok = a["low"].notna()
                ax.fill_between(a[x][ok], a["low"][ok], a["high"][ok], color=c, alpha=0.2,
                                linewidth=0)
            if bagg is not None and (bagg[hue] == t).any():
                ax.axhline(float(bagg.loc[bagg[hue] == t, "mean"].iloc[0]), color=c,
                           linestyle="--", linewidth=1)
        if y == "gain":
            ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ticks = sorted(set(pd.to_numeric(pos[x], errors="coerce").dropna()))
        if ticks:
            ax.set_xticks(ticks, [_size_label(v) for v in ticks])
            ax.minorticks_off()
        ax.set_xlabel("intermediate examples (log scale)")
        ax.set_title(f"{col}: {p}" if p is not None else "all target tasks")
    _note_clipped(axes[0], drawn, with_zero=y == "gain")
    axes[0].set_ylabel(_y_label(y, unit))
    handles, labels = axes[0].get_legend_handles_labels()
    if y != "gain" and (pd.to_numeric(d[x], errors="coerce") == 0).any():
        from matplotlib.lines import Line2D
        handles.append(Line2D([], [], color="grey", linestyle="--"))
        labels.append("no intermediate task (baseline)")
    axes[-1].legend(handles, labels, title=TIER_LEGEND_TITLE, loc="upper left",
                    bbox_to_anchor=(1.01, 1.0))
    what = "Gain over baseline" if y == "gain" else "Score"
    fig.suptitle(f"{what} vs. intermediate-task data size, by resource tier ({CI_TEXT}){title_note}")
    return fig


# ------------------------------------------------------------------------------------
# 3. gain per language set, seen vs unseen
# ------------------------------------------------------------------------------------

def plot_language_sets(gains: pd.DataFrame, y: str = "gain", set_col: str = "language_set",
                       seen_col: str = "seen", tier_col: str = "tier",
                       size_col: str = "intermediate_size", size: int | None = None,
                       order: Sequence[str] | None = None, unit: str = "points",
                       where: Mapping | None = None) -> Figure:
    """Mean gain per intermediate language set at one size, bars per tier, in two panels:
    evaluation languages seen in the intermediate data and unseen ones. Error bars: 95% t
    interval over seed × language. Size: `size`, else the largest size every language set has."""
    d = primary_metric(_filter(gains, where))
    if seen_col not in d.columns:
        from .languages import annotate
        d = annotate(d)
    if size is None and size_col in d.columns:
        common = set.intersection(*(set(g[size_col]) for _, g in d.groupby(set_col)))
        if not common:
            raise ValueError("no intermediate size is shared by all language sets; pass size=")
        size = max(common)
    if size is not None:
        d = d[d[size_col] == size]
    sets = list(order) if order else _set_order(d, set_col)
    tiers = _tiers_present(d, tier_col)
    fig = Figure(figsize=(max(7.0, 1.4 * len(sets) * 2 + 2.5), 4.0), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True, squeeze=False)[0]
    width = 0.8 / max(1, len(tiers))
    x = np.arange(len(sets))
    seen = d[seen_col].astype(bool)
    drawn = []
    for ax, flag, name in ((axes[0], True, "seen in the intermediate data"),
                           (axes[1], False, "unseen in the intermediate data")):
        agg = _unit_ci(d[seen == flag].assign(**{set_col: d[set_col].astype(str)}),
                       [set_col, tier_col], y)
        drawn.append(agg)
        for j, t in enumerate(tiers):
            a = agg[agg[tier_col] == t].set_index(set_col).reindex(sets)
            err = np.vstack([a["mean"] - a["low"], a["high"] - a["mean"]])
            ax.bar(x - 0.4 + width * (j + 0.5), a["mean"], width, color=TIER_COLORS.get(t, "grey"),
                   yerr=np.where(np.isnan(err), 0, err), capsize=3)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(x, sets, rotation=30)
        ax.set_xlabel("intermediate language set")
        n_lang = d.loc[seen == flag, "language"].nunique() if "language" in d else 0
        ax.set_title(f"{name} ({n_lang} languages)")
    _note_clipped(axes[0], drawn, with_zero=True)
    axes[0].set_ylabel(_y_label(y, unit))
    _tier_legend(axes[1], tiers, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    size_txt = f"{int(size):,} intermediate examples" if size is not None else "all sizes"
    fig.suptitle(f"Gain over baseline per intermediate language set at {size_txt} "
                 f"({CI_TEXT})")
    return fig


# ------------------------------------------------------------------------------------
# 4. gain vs typological distance
# ------------------------------------------------------------------------------------

def plot_distance(gains: pd.DataFrame, x: str = "distance", y: str = "gain",
                  hue: str = "tier", language_col: str = "language", set_col: str = "language_set",
                  annotate: bool = True, unit: str = "points",
                  x_label: str = "URIEL typological distance to the intermediate languages (0–1)",
                  where: Mapping | None = None) -> Figure:
    """Per-language mean gain (over seeds and target tasks) against the language's URIEL
    distance to the intermediate language set, coloured by tier, with one least-squares
    line and its 95% band over all points. One point per (language, language set)."""
    d = primary_metric(_filter(gains, where))
    if x not in d.columns or hue not in d.columns:
        from .languages import annotate
        d = annotate(d)
    d = d[d[x].notna()]
    keys = [language_col, hue, x] + ([set_col] if set_col in d.columns else [])
    pts = d.groupby(keys, dropna=False)[y].mean().reset_index()
    tiers = _tiers_present(pts, hue)
    fig = Figure(figsize=(8.5, 4.8), layout="constrained")
    ax = fig.subplots()
    if len(pts) >= 2 and pts[x].nunique() >= 2:
        from scipy import stats as st
        fit = st.linregress(pts[x].astype(float), pts[y].astype(float))
        sns.regplot(data=pts, x=x, y=y, ax=ax, scatter=False, color="black", ci=95,
                    line_kws={"linewidth": 1.2})
        ax.get_lines()[-1].set_label(f"least-squares fit ± 95% CI\n(slope {fit.slope:.1f} {unit} "
                                     "per unit distance)")
    for t in tiers:
        a = pts[pts[hue] == t]
        ax.scatter(a[x], a[y], color=TIER_COLORS.get(t, "grey"), label=TIER_LABELS.get(t, t),
                   s=28, alpha=0.85, edgecolor="white", linewidth=0.5)
    if annotate:
        for _, r in pts.iterrows():
            ax.annotate(str(r[language_col]), (r[x], r[y]), fontsize=7, xytext=(3, 2),
                        textcoords="offset points")
    ax.axhline(0, color="black", linewidth=0.6, linestyle=":")
    ax.set_xlabel(x_label)
    ax.set_ylabel(_y_label(y, unit))
    ax.legend(title=TIER_LEGEND_TITLE, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("Gain per evaluation language vs. distance to the intermediate languages")
    return fig


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
