"""Calibration of the study's inference, tested on simulated studies, not assumed.

Each simulated study has a known effect, a known seed variance (one intermediate and one
target run per seed, shared by every language) and a known language variance:
gain[s, l] = effect + u[s] + v[l] + e[s, l]. With 1,000 studies per scenario the binomial
standard error of a 95% coverage is 0.7 points, so 92-98% is a band of about +-4 SE; the
generator is seeded, so the numbers below are exact and reproducible. The whole file runs
in about a second on one core.
"""
import numpy as np
import pytest

from xfer_nb import stats as S

STUDIES = 1000
# (seeds, languages, seed SD, language SD, residual SD): the default study's shape (5 seeds,
# ~6 low-resource languages), few seeds, many languages, language variance dominating.
SCENARIOS = [(5, 6, 2.0, 1.0, 1.0), (3, 6, 2.0, 1.0, 1.0), (5, 20, 1.0, 0.5, 2.0), (5, 8, 0.5, 2.0, 1.0),
             (10, 5, 1.0, 1.0, 1.0)]


@pytest.mark.parametrize("n_seeds,n_languages,seed_sd,language_sd,noise_sd", SCENARIOS)
def test_seed_level_intervals_cover_and_the_row_level_test_over_rejects(n_seeds, n_languages, seed_sd, language_sd,
                                                                        noise_sd):
    rng = np.random.default_rng(1000 + n_seeds * 7 + n_languages)
    effect = 1.5
    y = S.simulate_gains(STUDIES, n_seeds, n_languages, effect, seed_sd, language_sd, noise_sd, rng)
    with_effect = S.calibrate(y, effect)
    null = S.calibrate(y - effect, 0.0)
    print(n_seeds, n_languages, seed_sd, language_sd, noise_sd, with_effect, null)
    assert 0.92 <= with_effect["seed_level_coverage"] <= 0.98
    assert 0.92 <= null["seed_level_coverage"] <= 0.98
    assert null["seed_level_rejects"] <= 0.07
    # the contrast: every (seed, language) row as a unit rejects a true null far too often
    assert null["row_level_rejects"] > 0.25
    assert null["row_level_coverage"] < 0.80


def test_language_variance_needs_the_item_term():
    """Averaging languages within seeds and a t over seeds treats the languages as fixed: when
    languages differ in their gain it under-covers the effect over languages; the crossed
    estimator does not."""
    y = S.simulate_gains(STUDIES, 5, 8, 0.0, 0.5, 2.0, 1.0, np.random.default_rng(7))
    r = S.calibrate(y, 0.0)
    assert r["seed_means_rejects"] > 0.2
    assert r["seed_level_rejects"] <= 0.07


def test_tier_interaction_contrast_is_calibrated():
    """Low minus high: two item groups sharing each seed's runs, a seed x tier interaction,
    language effects in both groups."""
    rng = np.random.default_rng(11)
    n, s = STUDIES, 5
    u = rng.normal(0, 2.0, (n, s, 1))
    w = rng.normal(0, 0.7, (n, s, 1))
    low = 0.8 + u + w + rng.normal(0, 1.0, (n, 1, 6)) + rng.normal(0, 1.0, (n, s, 6))
    high = u + rng.normal(0, 1.0, (n, 1, 5)) + rng.normal(0, 1.0, (n, s, 5))
    r = S.crossed_contrast([low, high], [1.0, -1.0])
    from scipy import stats as st
    q = st.t.ppf(0.975, r["df"])
    coverage = np.mean(np.abs(r["estimate"] - 0.8) <= q * r["se"])
    assert 0.92 <= coverage <= 0.98


def test_power_and_equivalence_on_a_known_case():
    """Equivalence needs a narrow interval inside the margin; a wide one is inconclusive; the
    MDE shrinks with the square root of the number of seeds."""
    rng = np.random.default_rng(3)
    tight = S.infer([0.05 + rng.normal(0, 0.1, (6, 8))], smallest_effect=1.0)
    assert tight["verdict"] == "equivalent (no effect)" and tight["tost_p"] < 0.05
    wide = S.infer([rng.normal(0, 3.0, (3, 8))], smallest_effect=1.0)
    assert wide["verdict"] == "inconclusive" and wide["mde_80"] > 1.0
    gain = S.infer([2.0 + rng.normal(0, 0.3, (5, 8))])
    assert gain["verdict"] == "gain" and gain["ci_low"] > 0
    mdes = [S.mde(1.0 / np.sqrt(k), k - 1) for k in (5, 20)]
    assert mdes[0] > 2 * mdes[1] * 0.9
    # se and df of a seed-only study: the MDE is (t_.975 + t_.8) * se with df = seeds - 1
    from scipy import stats as st
    assert S.mde(1.0, 4) == pytest.approx(st.t.ppf(0.975, 4) + st.t.ppf(0.8, 4))
