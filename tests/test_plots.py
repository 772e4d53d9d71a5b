"""Figures build from a constructed tidy table, carry their labels and legends, and save."""
import itertools
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from xfer_nb import languages as L
from xfer_nb import plots as P
from xfer_nb import stats as S

LANGS = ("en", "fr", "de", "hi", "ur", "sw", "yo", "zh")
SETS = {"none": (), "en": ("en",), "en+close3": ("en", "de", "fr", "es"), "en+far3": ("en", "zh", "sw", "ar")}


@pytest.fixture(scope="module")
def tidy():
    """Two target tasks (xnli accuracy; tydiqa f1 + exact_match), baseline + two
    intermediate tasks at three sizes with the "en" set, and two more language sets at
    4,000 examples; 3 seeds. Scores in points: gain = tier effect * log2(size / 125)."""
    rng = np.random.default_rng(0)
    effect = {"low": 1.0, "mid": 0.6, "high": 0.3}
    rows = []
    configs = [("none", 0, "none")] + [(t, n, "en") for t in ("mnli", "siqa") for n in (1000, 4000, 16000)] \
        + [("mnli", 4000, s) for s in ("en+close3", "en+far3")]
    for seed, (task, metrics), lang in itertools.product(
            (0, 1, 2), (("xnli", ("accuracy",)), ("tydiqa", ("f1", "exact_match"))), LANGS):
        base = rng.uniform(40, 80)
        for it, size, lset in configs:
            members = SETS[lset]
            gain = 0.0 if size == 0 else effect[L.tier(lang)] * math.log2(size / 125) \
                + (0.5 if it == "mnli" else 0.0) + rng.normal(0, 0.3)
            for metric in metrics:
                rows.append(dict(
                    run_id=f"{it}-{size}-{lset}-{seed}", stage="target", task=task, language=lang,
                    split="dev", metric=metric, value=base + gain - (10 if metric == "exact_match" else 0),
                    n_examples=100, seen=size > 0 and lang in members, seed=seed,
                    intermediate_task=it, intermediate_size=size, language_set=lset,
                    intermediate_languages=",".join(members), model_name_or_path="tiny",
                    tier=L.tier(lang),
                    distance=L.distance_to_set(lang, members) if members else math.nan))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def gains(tidy):
    return S.paired_gains(tidy)


def _legend_texts(fig):
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def _check_saves(fig, name, tmp_path):
    paths = P.save(fig, name, tmp_path)
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[0].stat().st_size > 5000
    assert "<svg" in paths[1].read_text()[:2000]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_primary_metric_keeps_one_metric_per_task(tidy):
    d = P.primary_metric(tidy)
    assert d.groupby("task")["metric"].unique().map(list).to_dict() == \
        {"tydiqa": ["f1"], "xnli": ["accuracy"]}


def test_task_gain_heatmap(gains, tmp_path):
    fig, caption = P.plot_task_gains(gains)
    heat_axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in heat_axes] == [f"{P.TIER_LABELS[t]} languages" for t in L.TIERS]
    assert heat_axes[0].get_ylabel() == "intermediate task"
    assert [t.get_text() for t in heat_axes[0].get_xticklabels()] == ["tydiqa", "xnli"]
    assert [t.get_text() for t in heat_axes[0].get_yticklabels()] == ["mnli", "siqa"]
    assert fig.axes[-1].get_ylabel() == "mean zero-shot gain (points)"  # colour bar
    title = fig._suptitle.get_text()
    assert "largest size: mnli 16,000, siqa 16,000" in title  # the title names the size
    cells = [t.get_text() for t in heat_axes[0].texts]
    assert all("n=3×" in c for c in cells)  # n = seeds x languages on every cell
    assert all(c.count("[") == 1 for c in cells)  # and its seed-level interval
    # in-task pair flagged: mnli -> xnli
    assert any(c.split("\n")[0].endswith("*") for c in cells)
    assert "in-task" in caption and "zero-shot" in caption and "seed as the unit" in caption
    # English is not in any cell: the high tier pools fr, de, hi, zh
    high = [t.get_text() for t in heat_axes[2].texts]
    assert all(c.endswith("n=3×4") for c in high)
    _check_saves(fig, "task_gains", tmp_path)


def test_size_curves_per_task_with_fitted_lines(gains, tmp_path):
    fig, caption = P.plot_size_curve(gains[(gains.language_set == "en") & (gains.intermediate_task == "mnli")],
                                     size_task="mnli")
    assert [ax.get_title() for ax in fig.axes] == ["target task: tydiqa", "target task: xnli"]
    assert fig.axes[0].get_ylabel() == "zero-shot gain (points of f1)"
    assert fig.axes[1].get_ylabel() == "zero-shot gain (points of accuracy)"  # own metric, own scale
    ax = fig.axes[1]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "intermediate examples (log scale)"
    fits = [t.get_text() for t in ax.get_legend().get_texts()]
    low = [f for f in fits if f.startswith("low:")][0]
    assert float(low.split()[1]) == pytest.approx(1.0, abs=0.15)  # about +1 per doubling on low languages
    assert any(t.get_text().startswith("n=3×") for t in ax.texts)
    assert "per-seed" in caption or "each seed" in caption
    _check_saves(fig, "size_curve", tmp_path)


def test_size_ticks_read_as_sizes():
    # powers of two on the size axis are written out, not as "4.096k"
    assert [P._size_label(n) for n in (256, 1000, 4096, 16000, 16384, 1_500_000)] == \
        ["256", "1k", "4,096", "16k", "16,384", "1.5M"]


def test_language_set_bars(gains, tmp_path):
    fig, caption = P.plot_language_sets(gains)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0].startswith("tydiqa: seen") and titles[1].startswith("tydiqa: unseen")
    assert titles[2].startswith("xnli: seen")
    assert "4,000 intermediate examples" in fig._suptitle.get_text()  # the size all sets share
    assert "English is in neither" in caption
    _check_saves(fig, "language_sets", tmp_path)
    # a target trained after the English set only gets no row of panels
    only_en = gains[(gains["task"] != "xnli") | (gains["language_set"] == "en")]
    titles = [ax.get_title() for ax in P.plot_language_sets(only_en)[0].axes if ax.get_title()]
    assert not any(t.startswith("xnli") for t in titles) and titles[0].startswith("tydiqa: seen")


def test_distance_per_task(gains, tmp_path):
    fig, caption = P.plot_distance(gains)
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["target task: tydiqa", "target task: xnli"]
    assert axes[0].get_xlabel().startswith("URIEL distance")
    # zero-shot only: seen languages (distance 0) and English are not drawn
    xs = [c.get_offsets()[:, 0] for ax in axes for c in ax.collections if len(c.get_offsets())]
    assert min(x.min() for x in xs) > 0
    labels = [t.get_text() for t in axes[0].texts]
    assert "en" not in labels
    assert "least squares" in axes[0].get_legend().get_texts()[0].get_text()
    _check_saves(fig, "distance", tmp_path)


def test_in_task_pairs():
    assert P.in_task("mnli", "xnli") and P.in_task("NLI", "xnli") and P.in_task("udpos", "udpos")
    assert P.in_task("pos", "udpos") and not P.in_task("siqa", "xnli") and not P.in_task("nli", "udpos")


def test_language_table(tidy, gains):
    tab = P.language_table(tidy, "xnli")
    assert tab.index.names == ["tier", "language"]
    assert list(tab.index.get_level_values("tier").unique()) == list(L.TIERS)
    assert tab.shape == (len(LANGS), 9)  # baseline + 2 tasks x 3 sizes + 2 more sets
    # a cell is the mean over seeds
    d = tidy[(tidy.task == "xnli") & (tidy.language == "sw") & (tidy.intermediate_task == "none")]
    assert tab.loc[("low", "sw"), ("none", 0, "none")] == pytest.approx(d["value"].mean(), abs=0.05)
    gtab = P.language_table(gains, "tydiqa", value="gain")
    assert gtab.shape == (len(LANGS), 8)
    assert (gtab.loc["low"].min(axis=None) > gtab.loc["high"].min(axis=None))
    styler = P.language_table(gains, "tydiqa", value="gain", style=True)
    assert "<table" in styler.to_html()
    with pytest.raises(ValueError):
        P.language_table(tidy, "nope")


def test_cells_are_seed_level():
    # 3 seeds x 4 languages; the cell's interval is stats.seed_level's, never the row-level one
    rng = np.random.default_rng(0)
    rows = [dict(seed=s, language=l, task="a", tier="low", gain=float(1 + 0.8 * s + rng.normal(0, 0.1)))
            for s in range(3) for l in ("sw", "yo", "wo", "mr")]
    df = pd.DataFrame(rows)
    cell = P.seed_cells(df, ["tier"]).iloc[0]
    ref = S.seed_level(df)
    assert (cell["low"], cell["high"]) == pytest.approx((ref["ci_low"], ref["ci_high"]))
    assert (cell["n_seeds"], cell["n_languages"]) == (3, 4)
    row_lo, row_hi = S.mean_ci(df["gain"])[1:]
    assert cell["high"] - cell["low"] > 2 * (row_hi - row_lo)


def test_no_size_line_is_fitted_through_one_seed(gains):
    one_seed = gains[(gains.language_set == "en") & (gains.intermediate_task == "mnli") & (gains.seed == gains.seed.min())]
    fig, caption = P.plot_size_curve(one_seed, size_task="mnli")
    assert all(ax.get_legend() is None for ax in fig.axes)   # points with their n, no fitted line
    assert "at least 2 seeds" in caption


def test_a_run_s_language_bars_are_its_zero_shot_scores_not_its_validation_rows():
    import pandas as pd
    from xfer_nb import views
    rows = [{"task": "udpos", "language": "en", "split": "validation", "metric": "validation_score", "value": 67.0},
            {"task": "udpos", "language": "en", "split": "validation", "metric": "chance", "value": 0.0}]
    rows += [{"task": "udpos", "language": lang, "split": "test", "metric": metric, "value": value}
             for lang, value in (("wo", 39.5), ("yo", 44.8), ("en", 70.4)) for metric in ("accuracy", "f1")]
    fig = views.language_scores(pd.DataFrame(rows))
    ax = fig.axes[0]
    assert ax.get_title() == "udpos: zero-shot f1 per language"      # the task's primary metric
    assert sorted(t.get_text() for t in ax.get_xticklabels()) == ["en", "wo", "yo"]
