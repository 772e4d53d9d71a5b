"""Statistics on constructed tables whose answers are known."""
import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from xfer_nb import stats as S


def _tidy(gain_fn, seeds=(0, 1, 2), langs=("en", "fr", "sw", "yo"), tasks=("xnli", "pawsx"),
          configs=(("mnli", 1000), ("mnli", 4000)), splits=("dev", "test"), rng_seed=0):
    """A tidy table: a baseline (none, 0) per (seed, task, language, split) with a random
    score, and one row per config whose value is baseline + gain_fn(config, lang, seed)."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for seed, task, lang, split in itertools.product(seeds, tasks, langs, splits):
        base = float(rng.uniform(30, 80))
        common = dict(seed=seed, task=task, language=lang, split=split, metric="accuracy",
                      language_set="en")
        rows.append(dict(common, intermediate_task="none", intermediate_size=0, value=base))
        for it, size in configs:
            rows.append(dict(common, intermediate_task=it, intermediate_size=size,
                             value=base + gain_fn((it, size), lang, seed)))
    return pd.DataFrame(rows)


def test_mean_ci_student_t():
    m, lo, hi = S.mean_ci([1.0, 2.0, 3.0])
    h = st.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # sd = 1
    assert (m, lo, hi) == pytest.approx((2.0, 2.0 - h, 2.0 + h))
    assert h == pytest.approx(2.4842, abs=1e-4)
    m, lo, hi = S.mean_ci([5.0])
    assert m == 5.0 and math.isnan(lo) and math.isnan(hi)
    assert all(math.isnan(v) for v in S.mean_ci([]))
    assert S.mean_ci([2.0, 2.0, np.nan]) == (2.0, 2.0, 2.0)
    # 90% interval is narrower than 95%
    assert S.mean_ci([1, 2, 4, 8], 0.90)[2] < S.mean_ci([1, 2, 4, 8], 0.95)[2]


def test_mean_ci_covers_the_true_mean_at_its_nominal_rate():
    rng = np.random.default_rng(1)
    samples = rng.normal(1.5, 2.0, size=(2000, 5))
    covered = [lo <= 1.5 <= hi for _, lo, hi in map(S.mean_ci, samples)]
    assert 0.93 <= np.mean(covered) <= 0.97
    m, lo, hi = S.mean_ci(rng.normal(1.5, 0.5, size=10))
    assert lo < 1.5 < hi


def test_paired_gains_recovers_a_constant_gain_exactly():
    df = _tidy(lambda cfg, lang, seed: 2.5)
    g = S.paired_gains(df)
    # 2 configs x 3 seeds x 2 tasks x 4 languages x 2 splits, every one paired
    assert len(g) == 2 * 3 * 2 * 4 * 2
    assert np.allclose(g["gain"], 2.5)
    assert (g["intermediate_task"] == "mnli").all() and set(g["intermediate_size"]) == {1000, 4000}
    assert np.allclose(g["value"] - g["baseline"], g["gain"])
    # tier filled in from the language table
    assert dict(zip(g["language"], g["tier"])) == {"en": "high", "fr": "high", "sw": "low", "yo": "low"}
    # the same with a query string and with a boolean mask as the baseline
    g2 = S.paired_gains(df, baseline="intermediate_size == 0")
    g3 = S.paired_gains(df, baseline=df["intermediate_task"] == "none")
    assert np.allclose(g2["gain"], 2.5) and len(g2) == len(g3) == len(g)


def test_paired_gains_pairs_by_seed_language_and_split():
    # gain depends on the language and the seed; a wrong pairing would mix them up
    df = _tidy(lambda cfg, lang, seed: {"en": 0.0, "fr": 1.0, "sw": 5.0, "yo": -3.0}[lang] + seed)
    g = S.paired_gains(df)
    expect = g["language"].map({"en": 0.0, "fr": 1.0, "sw": 5.0, "yo": -3.0}) + g["seed"]
    assert np.allclose(g["gain"], expect)
    # a baseline that is not unique per pairing key is an error, not a silent cross join
    with pytest.raises(ValueError, match="share a pairing key"):
        S.paired_gains(df, pair_on=["seed", "task", "language", "metric"])
    # a treatment row without its baseline is dropped
    df2 = df[~((df["intermediate_task"] == "none") & (df["language"] == "yo"))]
    assert "yo" not in set(S.paired_gains(df2)["language"])


def test_permutation_test_exact_known_answer():
    # 3 positive differences: only the all-plus and all-minus sign patterns reach |mean| = 2
    assert S.paired_test([1.0, 2.0, 3.0]) == pytest.approx(2 / 8)
    # differences that cancel exactly: every pattern reaches |mean| = 0
    assert S.paired_test([1.0, -1.0, 2.0, -2.0]) == 1.0
    assert S.paired_test(np.zeros(5)) == 1.0
    assert math.isnan(S.paired_test([]))


def test_paired_test_significant_and_not():
    rng = np.random.default_rng(7)
    clear = 1.0 + 0.5 * rng.standard_normal(40)        # gain of 1 point, sd 0.5
    null = rng.standard_normal(40)                     # no effect
    null = null - null.mean() + 0.02                   # observed mean essentially 0
    for method in ("permutation", "bootstrap"):
        assert S.paired_test(clear, method=method, n_resamples=5000) < 0.01
        assert S.paired_test(null, method=method, n_resamples=5000) > 0.2
    # small exact case: 12 positive differences -> p = 2 / 4096
    assert S.paired_test(np.arange(1, 13, dtype=float)) == pytest.approx(2 / 4096)
    # same seed, same answer
    assert S.paired_test(null, n_resamples=2000, seed=3) == S.paired_test(null, n_resamples=2000, seed=3)
    with pytest.raises(ValueError):
        S.paired_test(clear, method="ttest")


def test_bootstrap_ci_covers_the_mean():
    rng = np.random.default_rng(0)
    x = 3.0 + rng.standard_normal(200)
    m, lo, hi = S.bootstrap_ci(x, n_resamples=4000)
    assert m == pytest.approx(x.mean()) and lo < 3.0 < hi and hi - lo < 0.5


def test_significance_table_per_tier():
    rng = np.random.default_rng(11)
    def gain(cfg, lang, seed):  # high-resource: +0 on average; low-resource: +3
        return (3.0 if lang in ("sw", "yo") else 0.0) + 0.1 * rng.standard_normal()
    df = _tidy(gain, seeds=range(5))
    g = S.paired_gains(df)
    tab = S.significance_table(g, group_by=["intermediate_size", "tier"])
    assert list(tab.columns) == ["intermediate_size", "tier", "mean_gain", "ci_low", "ci_high",
                                 "p", "p_holm", "n", "n_seeds"]
    assert len(tab) == 4
    low = tab[tab["tier"] == "low"]
    high = tab[tab["tier"] == "high"]
    assert np.allclose(low["mean_gain"], 3.0, atol=0.1) and (low["p"] < 0.01).all()
    assert (low["ci_low"] < 3.0).all() and (low["ci_high"] > 2.9).all()
    assert np.allclose(high["mean_gain"], 0.0, atol=0.1)
    assert (high["ci_low"] < 0).all() and (high["ci_high"] > 0).all()
    assert (tab["n"] == 5 * 2 * 2 * 2).all() and (tab["n_seeds"] == 5).all()
    assert (tab["p_holm"] >= tab["p"]).all()
    # seed-level units: 5 seed means per group, exact test floor 2/32
    tab_s = S.significance_table(g, group_by=["intermediate_size", "tier"], unit="seed")
    assert (tab_s["n"] == 5).all()
    assert tab_s.loc[tab_s["tier"] == "low", "p"].tolist() == pytest.approx([2 / 32, 2 / 32])


def test_holm_adjustment():
    assert S.holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    out = S.holm([0.5, np.nan])
    assert out[0] == 0.5 and math.isnan(out[1])


def test_trend_recovers_known_slopes_per_tier():
    sizes = [250, 1000, 4000, 16000]
    slope = {"low": 2.0, "high": 0.5}
    rows = [dict(tier=t, intermediate_size=n, seed=s, gain=1.0 + slope[t] * math.log2(n))
            for t in slope for n in sizes for s in range(3)]
    # size-0 rows must be ignored
    rows += [dict(tier=t, intermediate_size=0, seed=0, gain=99.0) for t in slope]
    tr = S.trend(pd.DataFrame(rows)).set_index("tier")
    assert tr.loc["low", "slope"] == pytest.approx(2.0) and tr.loc["high", "slope"] == pytest.approx(0.5)
    assert tr.loc["low", "intercept"] == pytest.approx(1.0)
    assert tr.loc["low", "n"] == 12 and tr.loc["low", "n_sizes"] == 4
    assert tr.loc["low", "r2"] == pytest.approx(1.0)
    # per tenfold instead of per doubling
    tr10 = S.trend(pd.DataFrame(rows), log_base=10).set_index("tier")
    assert tr10.loc["low", "slope"] == pytest.approx(2.0 * math.log2(10))

    # with noise: the CI covers the true slope and excludes 0
    rng = np.random.default_rng(5)
    noisy = pd.DataFrame([dict(tier="low", intermediate_size=n, gain=1.5 * math.log2(n) + rng.normal(0, 1))
                          for n in sizes for _ in range(10)])
    r = S.trend(noisy).iloc[0]
    assert r["ci_low"] < 1.5 < r["ci_high"] and r["ci_low"] > 0 and r["p"] < 0.001
    # one size only: no slope
    one = S.trend(noisy[noisy["intermediate_size"] == 1000]).iloc[0]
    assert math.isnan(one["slope"]) and one["n_sizes"] == 1


# ---------------------------------------------------------------- distance: random intercept per language

def _languages_at_distances(rng, slope, language_sd, noise_sd, n_languages=8, n_sets=3, level_follows_x=0.0):
    """Each language seen from n_sets language sets at different distances; a language's own
    level is a random intercept (plus level_follows_x times its mean distance)."""
    rows = []
    for lang in range(n_languages):
        xs = rng.uniform(0.2, 0.9, n_sets)
        level = rng.normal(0, language_sd) + level_follows_x * xs.mean()
        for x in xs:
            rows.append((f"l{lang}", x, level + slope * x + rng.normal(0, noise_sd)))
    return pd.DataFrame(rows, columns=["language", "distance", "gain"])


def test_random_intercept_slope_recovers_the_distance_slope():
    rng = np.random.default_rng(0)
    est = [S.random_intercept_slope(d["distance"], d["gain"], d["language"])
           for d in (_languages_at_distances(rng, -10.0, 3.0, 0.5) for _ in range(200))]
    assert np.mean(est) == pytest.approx(-10.0, abs=0.3)
    # language levels that follow distance (far languages are low-resource) do not leak in when
    # the language variance dominates: the estimate stays at the within-language slope
    rng = np.random.default_rng(1)
    est = [S.random_intercept_slope(d["distance"], d["gain"], d["language"])
           for d in (_languages_at_distances(rng, -10.0, 5.0, 0.5, level_follows_x=-30.0) for _ in range(200))]
    assert np.mean(est) == pytest.approx(-10.0, abs=0.6)


def test_random_intercept_slope_between_fixed_and_pooled():
    rng = np.random.default_rng(2)
    d = _languages_at_distances(rng, 4.0, 0.0, 2.0, n_languages=10)
    fixed = d.assign(x=d["distance"] - d.groupby("language")["distance"].transform("mean"),
                     y=d["gain"] - d.groupby("language")["gain"].transform("mean"))
    fe = float((fixed["x"] * fixed["y"]).sum() / (fixed["x"] ** 2).sum())
    pooled = float(np.polyfit(d["distance"], d["gain"], 1)[0])
    re = S.random_intercept_slope(d["distance"], d["gain"], d["language"])
    assert min(fe, pooled) - 1e-9 <= re <= max(fe, pooled) + 1e-9
    # two languages: no language variance can be estimated, so the fixed-effect slope
    two = d[d["language"].isin(["l0", "l1"])]
    t = two.assign(x=two["distance"] - two.groupby("language")["distance"].transform("mean"),
                   y=two["gain"] - two.groupby("language")["gain"].transform("mean"))
    assert S.random_intercept_slope(two["distance"], two["gain"], two["language"]) == \
        pytest.approx(float((t["x"] * t["y"]).sum() / (t["x"] ** 2).sum()))
    # one distance per language (an English-only study): no slope, not a pooled one
    one = d.groupby("language", as_index=False).first()
    assert math.isnan(S.random_intercept_slope(one["distance"], one["gain"], one["language"]))
