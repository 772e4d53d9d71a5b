"""Statistics over the tidy results table: means with confidence intervals over seeds,
paired gains over the no-intermediate baseline, paired significance tests and
size trends.

The tidy table has one row per (run, task, language, split, metric) with at least the
columns ``seed``, ``task`` (the target task), ``language``, ``metric``, ``value`` and the
configuration columns ``intermediate_task`` (``"none"`` for the baseline),
``intermediate_size`` (0 for the baseline), ``language_set``, and usually ``split``,
``tier``, ``seen``, ``distance``. Pure pandas / numpy / scipy.

Units: gains are ``value - baseline value`` in the unit of ``value`` (points if the
metrics are percentages).

Independence: ``paired_test`` and ``significance_table`` treat each paired difference
as one unit by default. Differences of one seed across languages share the same
intermediate and target-task runs and are not independent, so a row-level p-value is
optimistic; pass ``unit="seed"`` (or ``cluster=["seed"]``) to average within seeds first,
which is conservative (with 3 seeds an exact sign-flip test cannot go below p = 0.25).
"""
from __future__ import annotations

import itertools
import math
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as _st

BASELINE_TASK = "none"
DEFAULT_PAIR_ON: tuple[str, ...] = ("seed", "task", "language", "metric")
DEFAULT_CONFIG: tuple[str, ...] = ("intermediate_task", "intermediate_size", "language_set")


# ------------------------------------------------------------------------------------
# means and intervals
# ------------------------------------------------------------------------------------

def mean_ci(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its Student-t confidence interval.

    Meant for one number per seed. NaNs are dropped. With one value the interval is
    (nan, nan) - one seed says nothing about seed variance; with none, all three are nan.
    With zero spread the interval collapses onto the mean."""
    x = np.asarray(list(values) if not isinstance(values, (np.ndarray, pd.Series)) else values,
                   dtype=float)
    x = x[~np.isnan(x)]
    n = x.size
    if n == 0:
        return (math.nan, math.nan, math.nan)
    m = float(x.mean())
    if n == 1:
        return (m, math.nan, math.nan)
    sem = float(x.std(ddof=1)) / math.sqrt(n)
    h = float(_st.t.ppf(0.5 + confidence / 2.0, df=n - 1)) * sem
    return (m, m - h, m + h)


def bootstrap_ci(values: Iterable[float], confidence: float = 0.95, n_resamples: int = 10000,
                 seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap interval of the mean (NaNs dropped)."""
    x = _as_array(values)
    if x.size == 0:
        return (math.nan, math.nan, math.nan)
    if x.size == 1:
        return (float(x[0]), math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_resamples, x.size))].mean(axis=1)
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [a, 1.0 - a])
    return (float(x.mean()), float(lo), float(hi))


def _as_array(values, column: str = "gain") -> np.ndarray:
    if isinstance(values, pd.DataFrame):
        values = values[column]
    x = np.asarray(values, dtype=float).ravel()
    return x[~np.isnan(x)]


# ------------------------------------------------------------------------------------
# paired gains
# ------------------------------------------------------------------------------------

def baseline_mask(df: pd.DataFrame) -> pd.Series:
    """Rows of the no-intermediate baseline: ``intermediate_task == "none"`` or
    ``intermediate_size == 0`` (whichever columns exist)."""
    mask = pd.Series(False, index=df.index)
    if "intermediate_task" in df:
        mask |= df["intermediate_task"].astype(str).str.lower().eq(BASELINE_TASK)
    if "intermediate_size" in df:
        mask |= pd.to_numeric(df["intermediate_size"], errors="coerce").eq(0)
    if "intermediate_task" not in df and "intermediate_size" not in df:
        raise KeyError("no intermediate_task / intermediate_size column to find the baseline by; "
                       "pass baseline=...")
    return mask


def paired_gains(df: pd.DataFrame, by: Sequence[str] | None = None,
                 baseline: pd.Series | str | Callable[[pd.DataFrame], pd.Series] | None = None,
                 pair_on: Sequence[str] | None = None, value: str = "value") -> pd.DataFrame:
    """Gain of every non-baseline row over its no-intermediate baseline.

    df       the tidy table.
    by       configuration columns that name a condition (kept in the output; default: those
             of intermediate_task, intermediate_size, language_set present in `df`).
    baseline which rows are the baseline: a boolean mask, a ``DataFrame.query`` string or a
             callable df -> mask; default ``baseline_mask`` (task "none" or size 0).
    pair_on  columns a treatment row and its baseline row must share; default
             (seed, task, language, metric), plus ``split`` when `df` has it.
    value    the score column.

    Returns the treatment rows (all their columns) with ``baseline`` (the baseline value)
    and ``gain`` (value - baseline). Treatment rows without a baseline are dropped. A
    baseline that is not unique per pairing key raises ValueError. ``tier`` is added from
    ``xfer_nb.languages`` when `df` has no tier column."""
    if baseline is None:
        mask = baseline_mask(df)
    elif isinstance(baseline, str):
        mask = df.index.isin(df.query(baseline).index)
        mask = pd.Series(mask, index=df.index)
    elif callable(baseline):
        mask = pd.Series(baseline(df), index=df.index).astype(bool)
    else:
        mask = pd.Series(baseline, index=df.index).astype(bool)
    keys = list(pair_on) if pair_on is not None else \
        list(DEFAULT_PAIR_ON) + (["split"] if "split" in df.columns else [])
    missing = [k for k in keys + [value] if k not in df.columns]
    if missing:
        raise KeyError(f"paired_gains: columns {missing} are not in the table")
    by = list(by) if by is not None else [c for c in DEFAULT_CONFIG if c in df.columns]

    base = df.loc[mask, keys + [value]]
    dup = base.duplicated(keys, keep=False)
    if dup.any():
        raise ValueError(
            f"the baseline has {int(dup.sum())} rows that share a pairing key {keys}; "
            f"e.g. {base.loc[dup, keys].head(3).to_dict('records')} - add columns to pair_on "
            "or filter the table")
    treat = df.loc[~mask]
    out = treat.merge(base.rename(columns={value: "baseline"}), on=keys, how="inner",
                      validate="many_to_one")
    out["gain"] = out[value].astype(float) - out["baseline"].astype(float)
    if "tier" not in out.columns and "language" in out.columns:
        from . import languages
        out["tier"] = [_tier_or_nan(languages, c) for c in out["language"]]
    front = [c for c in by if c in out.columns] + [k for k in keys if k not in by]
    rest = [c for c in out.columns if c not in front]
    return out[front + rest].reset_index(drop=True)


def _tier_or_nan(languages, code):
    try:
        return languages.tier(code)
    except KeyError:
        return np.nan


# ------------------------------------------------------------------------------------
# tests
# ------------------------------------------------------------------------------------

def paired_test(gains, method: str = "permutation", n_resamples: int = 10000, seed: int = 0,
                column: str = "gain", cluster: Sequence[str] | None = None) -> float:
    """Two-sided p-value for "the mean paired difference is 0".

    gains   paired differences: an array/Series, or a DataFrame with a `column` column.
    method  "permutation": sign-flip test - under the null each difference is as likely
            to be negative as positive; p = share of sign patterns whose |mean| reaches the
            observed |mean|. Exact (all 2^n patterns) for n <= 16, else `n_resamples`
            random patterns with p = (1 + hits) / (1 + n_resamples).
            "bootstrap": resample the differences centred on 0 (the null) and count
            resampled |means| >= observed |mean|, p = (1 + hits) / (1 + n_resamples).
    cluster columns of a DataFrame `gains` to average within before testing (e.g.
            ["seed"]), so that each cluster is one unit.

    Returns nan with no differences; 1.0 if every difference is 0."""
    if cluster:
        if not isinstance(gains, pd.DataFrame):
            raise TypeError("cluster= needs a DataFrame of gains")
        gains = gains.groupby(list(cluster), dropna=False)[column].mean()
    d = _as_array(gains, column)
    n = d.size
    if n == 0:
        return math.nan
    obs = abs(d.mean())
    if np.allclose(d, 0.0):
        return 1.0
    tol = 1e-12 * max(1.0, obs)
    if method == "permutation":
        if n <= 16:
            signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
            means = np.abs(signs @ d) / n
            return float(np.mean(means >= obs - tol))
        rng = np.random.default_rng(seed)
        signs = rng.choice(np.array([1.0, -1.0]), size=(n_resamples, n))
        hits = int(np.sum(np.abs(signs @ d) / n >= obs - tol))
        return (1 + hits) / (1 + n_resamples)
    if method == "bootstrap":
        rng = np.random.default_rng(seed)
        centred = d - d.mean()
        means = np.abs(centred[rng.integers(0, n, size=(n_resamples, n))].mean(axis=1))
        hits = int(np.sum(means >= obs - tol))
        return (1 + hits) / (1 + n_resamples)
    raise ValueError(f"method must be 'permutation' or 'bootstrap', got {method!r}")


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (nan stays nan)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    m = q.size
    if m == 0:
        return out
    order = np.argsort(q)
    adj = np.maximum.accumulate((m - np.arange(m)) * q[order])
    res = np.empty(m)
    res[order] = np.minimum(adj, 1.0)
    out[ok] = res
    return out


def significance_table(gains: pd.DataFrame, group_by: Sequence[str] | None = None,
                       column: str = "gain", method: str = "permutation",
                       n_resamples: int = 10000, seed: int = 0, confidence: float = 0.95,
                       unit: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Mean gain, confidence interval, p-value and counts per group.

    group_by  default: the configuration columns present plus "tier".
    unit      None: every row (a seed x task x language x metric pair) is one unit;
              "seed" (or a list of columns): average within those units first, so the
              interval and the test run over e.g. seed means (see the module docstring).
    Columns: group columns, mean_gain, ci_low, ci_high (Student t over the units), p
    (``paired_test`` with `method`), p_holm (Holm-adjusted over the table's rows), n (units),
    n_seeds (distinct seeds, if a seed column exists)."""
    if group_by is None:
        group_by = [c for c in (*DEFAULT_CONFIG, "tier") if c in gains.columns]
    group_by = list(group_by)
    units = [unit] if isinstance(unit, str) else list(unit or [])
    rows = []
    groups = gains.groupby(group_by, dropna=False, sort=True) if group_by else [((), gains)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        vals = g.groupby(units, dropna=False)[column].mean() if units else g[column]
        m, lo, hi = mean_ci(vals, confidence)
        p = paired_test(vals, method=method, n_resamples=n_resamples, seed=seed)
        row = dict(zip(group_by, key))
        row.update(mean_gain=m, ci_low=lo, ci_high=hi, p=p,
                   n=int(np.sum(~np.isnan(np.asarray(vals, dtype=float)))))
        if "seed" in g.columns:
            row["n_seeds"] = int(g["seed"].nunique())
        rows.append(row)
    out = pd.DataFrame(rows)
    if len(out):
        out.insert(out.columns.get_loc("p") + 1, "p_holm", holm(out["p"].to_numpy()))
    return out


# ------------------------------------------------------------------------------------
# trends
# ------------------------------------------------------------------------------------

def trend(gains: pd.DataFrame, x: str = "intermediate_size", y: str = "gain",
          by: str | Sequence[str] | None = "tier", log_base: float = 2.0,
          confidence: float = 0.95) -> pd.DataFrame:
    """Least-squares slope of `y` against log(`x`) per group, rows with x <= 0 excluded.

    With log_base=2 the slope is the change in `y` per doubling of the intermediate data
    (log_base=10: per tenfold). Columns: the group columns, slope, ci_low, ci_high
    (Student t with n-2 degrees of freedom), intercept (y at x = 1), p (slope = 0), r2,
    n (points), n_sizes (distinct x). Groups with fewer than 2 distinct x get nan."""
    if log_base <= 0 or log_base == 1:
        raise ValueError("log_base must be positive and not 1")
    d = gains[pd.to_numeric(gains[x], errors="coerce") > 0].copy()
    d["_lx"] = np.log(d[x].astype(float)) / math.log(log_base)
    by = [by] if isinstance(by, str) else list(by or [])
    groups = d.groupby(by, dropna=False, sort=True) if by else [((), d)]
    rows = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        g = g[np.isfinite(g["_lx"]) & np.isfinite(g[y].astype(float))]
        row = dict(zip(by, key))
        n, k = len(g), g["_lx"].nunique()
        row.update(slope=math.nan, ci_low=math.nan, ci_high=math.nan, intercept=math.nan,
                   p=math.nan, r2=math.nan, n=n, n_sizes=int(k))
        if k >= 2:
            r = _st.linregress(g["_lx"].to_numpy(float), g[y].to_numpy(float))
            row.update(slope=float(r.slope), intercept=float(r.intercept),
                       r2=float(r.rvalue ** 2), p=float(r.pvalue))
            if n > 2:
                h = float(_st.t.ppf(0.5 + confidence / 2.0, df=n - 2)) * float(r.stderr)
                row.update(ci_low=float(r.slope) - h, ci_high=float(r.slope) + h)
        rows.append(row)
    return pd.DataFrame(rows)
