"""Statistics over the tidy results table, with the seed as the unit of replication.

The tidy table has one row per (run, task, language, split, metric) with at least the
columns ``seed``, ``task`` (the target task), ``language``, ``metric``, ``value`` and the
configuration columns ``intermediate_task`` (``"none"`` for the baseline),
``intermediate_size`` (0 for the baseline), ``language_set``, and usually ``split``,
``tier``, ``seen``, ``distance``. Pure pandas / numpy / scipy.

Units: gains are ``value - baseline value`` in the unit of ``value`` (points if the
metrics are percentages).

The unit of inference (``crossed``)
-----------------------------------
One seed is one intermediate run and one target run per task; every language of that seed
is scored by the same two runs. So (seed, language) rows are not independent: languages
are repeated measures of a seed, not replicates. The model behind every interval and test
of the study is the crossed random-effects model

    gain[s, i] = effect + u[s] + v[i] + e[s, i],

with a random intercept u per seed, a random intercept v per item (an item is a language
within a target task) and a residual e. The estimate is the mean over seeds and items; its
variance, from the balanced two-way ANOVA mean squares, is

    var = (MS_seed + MS_item - MS_residual) / (n_seeds * n_items),

never smaller than MS_seed / (n_seeds * n_items), the variance of the mean of per-seed
means. Its degrees of freedom follow Satterthwaite. With no item variance this is the
paired t test on per-seed means (average the languages within each seed, then a t over the
seeds: exact for normal seed effects); with item variance the interval also generalises
over languages. Contrasts (low minus high tier, a set minus its control) and slopes (gain
per doubling of the intermediate data, fitted per seed and item) go through the same
formula (``crossed_contrast``). Only items that every seed has are used.

Why this and not statsmodels' MixedLM or a hierarchical bootstrap: with the 2-5 seeds a
study can afford, MixedLM's Wald intervals use normal quantiles and a REML variance that is
often 0 or on the boundary, and a bootstrap over 5 seeds has only 126 distinct resamples
and intervals that are too narrow (the 5-seed bootstrap of a mean covers about 85%). The
moment estimator with Satterthwaite degrees of freedom is exact for the seed part, is
closed-form (500 simulated studies take milliseconds, so calibration is a unit test), and
is the mixed model's own answer for balanced data. ``tests/test_calibration.py`` checks it
on simulated studies with known effect, seed variance and language variance: 95% intervals
cover the true effect 92-98% of the time and a null effect is rejected in at most 7% of
studies, while the row-level t (``row_level``, every (seed, language) row as a unit)
rejects a null far too often.

Power and equivalence
---------------------
``mde``: the minimal detectable effect at 80% power and two-sided alpha 0.05 from the
measured standard error: (t[1 - alpha/2, df] + t[0.8, df]) * se. ``tost``: the two
one-sided tests of |effect| < smallest effect of interest. ``verdict``: "gain" or "loss"
when p < alpha (Holm-adjusted in the primary family), "equivalent (no effect)" when the
TOST p < alpha, else "inconclusive".

The older row-level helpers (``paired_test``, ``significance_table`` with ``unit=None``,
``trend``) remain for exploration; the study's report uses the seed-level ones.
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


# ------------------------------------------------------------------------------------
# seed-level inference (the study's primary method; see the module docstring)
# ------------------------------------------------------------------------------------

ALPHA = 0.05
POWER = 0.80
UNIT_OF_INFERENCE = "seed (crossed seed and language random effects)"
VERDICTS = ("gain", "loss", "equivalent (no effect)", "inconclusive")


def _codes(df: pd.DataFrame, cols: Sequence[str]) -> tuple[np.ndarray, list[tuple]]:
    """Integer group codes of the rows by `cols` (sorted) and the key of each code."""
    if not cols:
        return np.zeros(len(df), dtype=np.int64), [()]
    parts = [pd.factorize(df[c], sort=True) for c in cols]
    code = np.zeros(len(df), dtype=np.int64)
    for codes_, uniques in parts:
        code = code * (len(uniques) + 1) + (codes_ + 1)
    uniq, inv = np.unique(code, return_inverse=True)
    first = np.zeros(len(uniq), dtype=np.int64)
    first[inv[::-1]] = np.arange(len(df))[::-1]
    keys = [tuple(parts[j][1][parts[j][0][i]] for j in range(len(cols))) for i in first]
    return inv, keys


def seed_item_matrix(gains: pd.DataFrame, item: Sequence[str] = ("task", "language"), seed: str = "seed",
                     value: str = "gain") -> pd.DataFrame:
    """Seeds x items table of `value` (mean over duplicates), keeping only items that every
    seed has and seeds that have every such item."""
    item = [c for c in item if c in gains.columns]
    if gains.empty:
        return pd.DataFrame()
    y = pd.to_numeric(gains[value], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(y)
    g = gains[ok]
    y = y[ok]
    s_code, s_keys = _codes(g, [seed])
    i_code, i_keys = _codes(g, item)
    total = np.zeros((len(s_keys), len(i_keys)))
    count = np.zeros_like(total)
    np.add.at(total, (s_code, i_code), y)
    np.add.at(count, (s_code, i_code), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = total / count
    cols = ["|".join(map(str, k)) if k else "all" for k in i_keys]
    out = pd.DataFrame(m, index=pd.Index([k[0] for k in s_keys], name=seed), columns=cols)
    out = out.dropna(axis=1, how="any")
    return out.dropna(axis=0, how="any")


def _mean_squares(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(MS_seed, MS_item, MS_residual) of seeds x items arrays (leading axes broadcast)."""
    s, l = y.shape[-2], y.shape[-1]
    grand = y.mean(axis=(-2, -1), keepdims=True)
    seed_m = y.mean(axis=-1, keepdims=True)
    item_m = y.mean(axis=-2, keepdims=True)
    ms_s = l * ((seed_m - grand) ** 2).sum(axis=(-2, -1)) / max(s - 1, 1)
    ms_i = s * ((item_m - grand) ** 2).sum(axis=(-2, -1)) / max(l - 1, 1)
    resid = y - seed_m - item_m + grand
    dfe = max((s - 1) * (l - 1), 1)
    ms_e = (resid ** 2).sum(axis=(-2, -1)) / dfe
    return ms_s, ms_i, ms_e


def crossed_contrast(groups: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> dict:
    """Estimate, standard error and Satterthwaite df of sum_g w_g * mean(Y_g) where each Y_g
    is a seeds x items array over the same seeds (rows aligned) and its own items.

    Seed part: the variance over seeds of the per-seed contrast z_s = sum_g w_g mean_i Y_g[s, i]
    divided by n_seeds (this carries the seed effect, the seed x group interaction and the
    residual). Item part, per group: max(0, MS_item - MS_residual) / (n_seeds * n_items).
    Works on stacked arrays (leading axes = simulated studies) for calibration."""
    groups = [np.asarray(g, dtype=float) for g in groups]
    weights = list(weights) if weights is not None else [1.0] * len(groups)
    s = groups[0].shape[-2]
    z = sum(w * g.mean(axis=-1) for w, g in zip(weights, groups))  # (..., S)
    est = z.mean(axis=-1)
    var_seed = z.var(axis=-1, ddof=1) / s if s > 1 else np.full_like(est, np.nan)
    terms = [(var_seed, s - 1)]
    var = var_seed
    for w, g in zip(weights, groups):
        l = g.shape[-1]
        if l < 2 or s < 2:
            continue
        _, ms_i, ms_e = _mean_squares(g)
        part = w ** 2 * np.maximum(ms_i - ms_e, 0.0) / (s * l)
        var = var + part
        # Satterthwaite pieces: +MS_item/(S L) with L-1 df, -MS_res/(S L) with (S-1)(L-1) df
        active = (ms_i > ms_e).astype(float)
        terms.append((active * w ** 2 * ms_i / (s * l), l - 1))
        terms.append((active * w ** 2 * ms_e / (s * l), (s - 1) * (l - 1)))
    denom = sum(t ** 2 / df for t, df in terms if df > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denom > 0, var ** 2 / denom, s - 1.0)
    df = np.clip(df, 1.0, None) if s > 1 else df
    return {"estimate": est, "se": np.sqrt(var), "df": df, "seed_sd": np.sqrt(z.var(axis=-1, ddof=1)) if s > 1
            else np.full_like(est, np.nan), "n_seeds": s, "n_items": sum(g.shape[-1] for g in groups)}


def mde(se: float, df: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Minimal detectable effect (two-sided alpha, given power) for a t test with this se and df."""
    if not np.isfinite(se) or not np.isfinite(df) or df <= 0:
        return math.nan
    return float((_st.t.ppf(1 - alpha / 2, df) + _st.t.ppf(power, df)) * se)


def tost(estimate: float, se: float, df: float, margin: float) -> float:
    """p of the two one-sided tests that |effect| < margin (small p: equivalent)."""
    if not all(np.isfinite([estimate, se, df])) or se <= 0 or margin <= 0:
        return math.nan
    p_low = _st.t.sf((estimate + margin) / se, df)   # H0: effect <= -margin
    p_high = _st.t.cdf((estimate - margin) / se, df)  # H0: effect >= +margin
    return float(max(p_low, p_high))


def verdict(estimate: float, p: float, tost_p: float, alpha: float = ALPHA) -> str:
    """"gain"/"loss" (p < alpha), "equivalent (no effect)" (TOST p < alpha), else "inconclusive"."""
    if np.isfinite(p) and p < alpha:
        return "gain" if estimate > 0 else "loss"
    if np.isfinite(tost_p) and tost_p < alpha:
        return "equivalent (no effect)"
    return "inconclusive"


def infer(groups: Sequence[np.ndarray], weights: Sequence[float] | None = None, confidence: float = 0.95,
          smallest_effect: float = 1.0, alpha: float = ALPHA) -> dict:
    """crossed_contrast plus interval, p, MDE, TOST and verdict, as one row's worth of numbers."""
    groups = [np.asarray(g, dtype=float) for g in groups]
    empty = {"estimate": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p": math.nan, "se": math.nan,
             "df": math.nan, "n_seeds": 0, "n_languages": 0, "seed_sd": math.nan, "mde_80": math.nan,
             "tost_p": math.nan, "verdict": "inconclusive"}
    if not groups or any(g.ndim != 2 or g.shape[0] == 0 or g.shape[1] == 0 for g in groups):
        return empty
    if len({g.shape[0] for g in groups}) != 1:
        raise ValueError("every group must have the same seeds (rows)")
    r = crossed_contrast(groups, weights)
    est, se, df = float(r["estimate"]), float(r["se"]), float(r["df"])
    out = dict(empty, estimate=est, se=se, df=df, n_seeds=int(r["n_seeds"]), n_languages=int(r["n_items"]),
               seed_sd=float(r["seed_sd"]))
    if r["n_seeds"] < 2 or not np.isfinite(se):
        return out
    if se == 0:
        p = 1.0 if est == 0 else 0.0
        out.update(ci_low=est, ci_high=est, p=p, mde_80=0.0, tost_p=0.0 if abs(est) < smallest_effect else 1.0)
    else:
        h = float(_st.t.ppf(0.5 + confidence / 2, df)) * se
        out.update(ci_low=est - h, ci_high=est + h, p=float(2 * _st.t.sf(abs(est) / se, df)),
                   mde_80=mde(se, df, alpha), tost_p=tost(est, se, df, smallest_effect))
    out["verdict"] = verdict(est, out["p"], out["tost_p"], alpha)
    return out


def seed_level(gains: pd.DataFrame, value: str = "gain", item: Sequence[str] = ("task", "language"),
               **kw) -> dict:
    """Seed-level inference for the mean of `value` over a gains table (one group)."""
    m = seed_item_matrix(gains, item=item, value=value)
    return infer([m.to_numpy()] if m.size else [], **kw)


def seed_level_difference(a: pd.DataFrame, b: pd.DataFrame, value: str = "gain",
                          item: Sequence[str] = ("task", "language"), paired_items: bool = True, **kw) -> dict:
    """Mean of `a` minus mean of `b` with the seed as the unit. paired_items: the same items in
    both (a set against its control on the same languages: differences per seed and item);
    else two item groups (low-resource minus high-resource languages)."""
    ma, mb = seed_item_matrix(a, item=item, value=value), seed_item_matrix(b, item=item, value=value)
    seeds = ma.index.intersection(mb.index)
    if paired_items:
        cols = ma.columns.intersection(mb.columns)
        d = ma.loc[seeds, cols] - mb.loc[seeds, cols]
        return infer([d.to_numpy()] if d.size else [], **kw)
    if not len(seeds) or not ma.shape[1] or not mb.shape[1]:
        return infer([], **kw)
    return infer([ma.loc[seeds].to_numpy(), mb.loc[seeds].to_numpy()], weights=[1.0, -1.0], **kw)


def per_seed_slopes(gains: pd.DataFrame, x: str = "intermediate_size", value: str = "gain",
                    item: Sequence[str] = ("task", "language"), log_base: float = 2.0,
                    seed: str = "seed") -> pd.DataFrame:
    """Least-squares slope of `value` on log(x) for every (seed, item) with at least two
    sizes (x <= 0 dropped): a table seed, items..., slope, n_sizes. With log_base 2 a slope
    is the change per doubling."""
    item = [c for c in item if c in gains.columns]
    keys = [seed] + item
    xs = pd.to_numeric(gains[x], errors="coerce")
    d = gains[(xs > 0) & pd.to_numeric(gains[value], errors="coerce").notna()]
    if d.empty:
        return pd.DataFrame(columns=keys + ["slope", "n_sizes"])
    g_code, g_keys = _codes(d, keys)
    lx = np.log(d[x].astype(float).to_numpy()) / math.log(log_base)
    y = d[value].astype(float).to_numpy()
    # mean per (group, size) first, so that duplicates do not weigh a size twice
    gx_code, gx_keys = _codes(pd.DataFrame({"g": g_code, "lx": lx}), ["g", "lx"])
    n_gx = np.bincount(gx_code)
    y_gx = np.bincount(gx_code, weights=y) / n_gx
    g_of = np.array([k[0] for k in gx_keys], dtype=np.int64)
    lx_of = np.array([k[1] for k in gx_keys], dtype=float)
    n_sizes = np.bincount(g_of, minlength=len(g_keys))
    mx = np.bincount(g_of, weights=lx_of, minlength=len(g_keys)) / np.maximum(n_sizes, 1)
    my = np.bincount(g_of, weights=y_gx, minlength=len(g_keys)) / np.maximum(n_sizes, 1)
    sxy = np.bincount(g_of, weights=(lx_of - mx[g_of]) * (y_gx - my[g_of]), minlength=len(g_keys))
    sxx = np.bincount(g_of, weights=(lx_of - mx[g_of]) ** 2, minlength=len(g_keys))
    ok = n_sizes >= 2
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = sxy / sxx
    out = pd.DataFrame([k for k, good in zip(g_keys, ok) if good], columns=keys)
    out["slope"] = slope[ok]
    out["n_sizes"] = n_sizes[ok]
    return out


def random_intercept_slope(x, y, groups) -> float:
    """Slope of y on x with a random intercept per group (the language): the random-effects
    GLS estimate, its variance components by moments. The within-group residuals give the
    residual variance; the scatter of group means about their own regression, less what
    that residual variance explains, gives the group variance (floored at 0). Each group is
    then quasi-demeaned by theta = 1 - sqrt(s2_e / (s2_e + n_g s2_v)) and one least-squares
    fit gives the slope. So a language seen at several distances (from several language
    sets) contributes its within-language contrast in full, and the between-language
    contrast counts only as far as the language variance allows: theta = 1 (language
    variance dominating) is the fixed-effect slope, theta = 0 the pooled one. With fewer
    than 3 groups the group variance cannot be estimated and the fixed-effect slope is
    used. NaN when no group is seen at two values of x: then every seed's slope would rest on
    the same languages' levels, which a t over seeds cannot see."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    codes, keys = pd.factorize(pd.Series(list(groups)))
    n_groups, n = len(keys), x.size
    n_g = np.bincount(codes, minlength=n_groups).astype(float)
    mx, my = np.bincount(codes, x, n_groups) / n_g, np.bincount(codes, y, n_groups) / n_g
    xw, yw = x - mx[codes], y - my[codes]
    sxx_w = float((xw ** 2).sum())
    if sxx_w <= 1e-12:
        return math.nan   # no group at two values of x: its level and its x cannot be told apart
    df_w = n - n_groups - 1
    s2_e = math.nan
    if df_w > 0:
        beta_w = float((xw * yw).sum()) / sxx_w
        s2_e = float(((yw - beta_w * xw) ** 2).sum()) / df_w
    if n_groups < 3 or not np.isfinite(s2_e):
        theta = np.ones(n_groups)
    else:
        bx, by = mx - mx.mean(), my - my.mean()
        sxx_b = float((bx ** 2).sum())
        resid = by - (float((bx * by).sum()) / sxx_b) * bx if sxx_b > 1e-12 else by
        s2_b = float((resid ** 2).sum()) / max(n_groups - (2 if sxx_b > 1e-12 else 1), 1)
        s2_v = max(0.0, s2_b - s2_e * float(np.mean(1.0 / n_g)))
        theta = 1.0 - np.sqrt(s2_e / (s2_e + n_g * s2_v)) if s2_e > 0 else np.ones(n_groups)
    t = theta[codes]
    xs, ys, cs = x - t * mx[codes], y - t * my[codes], 1.0 - t
    if np.abs(cs).max() < 1e-12:   # theta = 1 everywhere: the fixed-effect (within) fit, no intercept left
        return float((xs * ys).sum() / (xs ** 2).sum())
    design = np.column_stack([cs, xs])
    if np.linalg.matrix_rank(design) < 2:
        return math.nan
    return float(np.linalg.lstsq(design, ys, rcond=None)[0][1])


def row_level(values, confidence: float = 0.95) -> dict:
    """The naive analysis, kept as a contrast: every row (seed x language) one unit, Student
    t over rows. Over-rejects when languages share a seed's runs."""
    x = _as_array(values)
    if x.size < 2:
        return {"estimate": float(x.mean()) if x.size else math.nan, "p": math.nan,
                "ci_low": math.nan, "ci_high": math.nan}
    m, lo, hi = mean_ci(x, confidence)
    se = x.std(ddof=1) / math.sqrt(x.size)
    p = float(2 * _st.t.sf(abs(m) / se, x.size - 1)) if se > 0 else (1.0 if m == 0 else 0.0)
    return {"estimate": m, "p": p, "ci_low": lo, "ci_high": hi}


# ------------------------------------------------------------------------------------
# calibration on simulated studies
# ------------------------------------------------------------------------------------

def simulate_gains(n_studies: int, n_seeds: int, n_languages: int, effect: float, seed_sd: float,
                   language_sd: float, noise_sd: float, rng: np.random.Generator) -> np.ndarray:
    """Simulated gains, shape (studies, seeds, languages): effect + u[seed] + v[language] + e."""
    u = rng.normal(0.0, seed_sd, size=(n_studies, n_seeds, 1))
    v = rng.normal(0.0, language_sd, size=(n_studies, 1, n_languages))
    e = rng.normal(0.0, noise_sd, size=(n_studies, n_seeds, n_languages))
    return effect + u + v + e


def calibrate(y: np.ndarray, effect: float, confidence: float = 0.95, alpha: float = ALPHA) -> dict:
    """Coverage of `effect` and rejection rate (of effect 0) over simulated studies y
    (studies x seeds x languages), for the seed-level method, the per-seed-means t (languages
    as fixed) and the row-level t."""
    n, s, l = y.shape
    r = crossed_contrast([y])
    q = _st.t.ppf(0.5 + confidence / 2, r["df"])
    lo, hi = r["estimate"] - q * r["se"], r["estimate"] + q * r["se"]
    p = 2 * _st.t.sf(np.abs(r["estimate"]) / r["se"], r["df"])
    means = y.mean(axis=2)
    se_s = means.std(axis=1, ddof=1) / math.sqrt(s)
    q_s = _st.t.ppf(0.5 + confidence / 2, s - 1)
    p_s = 2 * _st.t.sf(np.abs(means.mean(axis=1)) / se_s, s - 1)
    flat = y.reshape(n, s * l)
    se_r = flat.std(axis=1, ddof=1) / math.sqrt(s * l)
    q_r = _st.t.ppf(0.5 + confidence / 2, s * l - 1)
    p_r = 2 * _st.t.sf(np.abs(flat.mean(axis=1)) / se_r, s * l - 1)
    cover = lambda est, se, qq: float(np.mean((est - qq * se <= effect) & (effect <= est + qq * se)))
    return {
        "seed_level_coverage": float(np.mean((lo <= effect) & (effect <= hi))),
        "seed_level_rejects": float(np.mean(p < alpha)),
        "seed_means_coverage": cover(means.mean(axis=1), se_s, q_s),
        "seed_means_rejects": float(np.mean(p_s < alpha)),
        "row_level_coverage": cover(flat.mean(axis=1), se_r, q_r),
        "row_level_rejects": float(np.mean(p_r < alpha)),
        "mean_mde_80": float(np.nanmean((_st.t.ppf(1 - alpha / 2, r["df"]) + _st.t.ppf(POWER, r["df"])) * r["se"])),
    }
