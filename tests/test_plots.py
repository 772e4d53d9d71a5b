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
    fig = P.plot_task_gains(gains)
    heat_axes = [ax for ax in fig.axes if ax.get_xlabel() == "target task"]
    assert len(heat_axes) == 3  # one panel per tier present
    assert [ax.get_title() for ax in heat_axes] == [f"{P.TIER_LABELS[t]} languages" for t in L.TIERS]
    assert heat_axes[0].get_ylabel() == "intermediate task"
    assert [t.get_text() for t in heat_axes[0].get_xticklabels()] == ["tydiqa", "xnli"]
    assert [t.get_text() for t in heat_axes[0].get_yticklabels()] == ["mnli", "siqa"]
    assert fig.axes[-1].get_ylabel() == "gain over baseline (points)"  # colour bar
    assert "intermediate and target task" in fig._suptitle.get_text()
    # annotations: low tier, mnli -> xnli at its largest size (16k): 1.0 * log2(128) + 0.5 = 7.5
    cells = {t.get_text() for t in heat_axes[0].texts}
    assert any(abs(float(c) - 7.5) < 0.3 for c in cells)
    _check_saves(fig, "task_gains", tmp_path)

    bars = P.plot_task_gains(gains, kind="bars", size=4000)
    assert bars.axes[-1].get_xlabel() == "target task"
    assert bars.axes[0].get_ylabel() == "gain over baseline (points)"
    assert _legend_texts(bars) == [P.TIER_LABELS[t] for t in L.TIERS]


def test_size_curves(tidy, gains, tmp_path):
    fig = P.plot_size_curve(gains)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "intermediate examples (log scale)"
    assert ax.get_ylabel() == "gain over baseline (points)"
    assert _legend_texts(fig) == [P.TIER_LABELS[t] for t in L.TIERS]
    assert fig.axes[-1].get_legend().get_title().get_text() == "resource tier"
    lines = {l.get_label(): l for l in ax.get_lines() if not l.get_label().startswith("_")}
    x, y = lines[P.TIER_LABELS["low"]].get_data()
    assert list(x) == [1000, 4000, 16000]
    assert np.all(np.diff(y) > 1.5)  # low tier gains about 2 points per 4x
    assert len(ax.collections) == 3  # one CI band per tier
    _check_saves(fig, "size_curve", tmp_path)

    fig2 = P.plot_size_curve(tidy, y="value", col="task")
    assert len(fig2.axes) == 2 and fig2.axes[0].get_ylabel() == "score (points)"
    # the baseline (language_set "none", as results.collect writes it) is drawn as dashed lines
    dashed = [l for l in fig2.axes[0].get_lines() if l.get_linestyle() == "--"]
    assert len(dashed) == 3
    assert "no intermediate task (baseline)" in _legend_texts(fig2)
    assert {ax.get_title() for ax in fig2.axes} == {"task: tydiqa", "task: xnli"}


def test_language_set_bars(gains, tmp_path):
    fig = P.plot_language_sets(gains, order=["en", "en+close3", "en+far3"])
    seen_ax, unseen_ax = fig.axes
    assert seen_ax.get_title().startswith("seen") and unseen_ax.get_title().startswith("unseen")
    assert seen_ax.get_ylabel() == "gain over baseline (points)"
    assert seen_ax.get_xlabel() == "intermediate language set"
    assert [t.get_text() for t in unseen_ax.get_xticklabels()] == ["en", "en+close3", "en+far3"]
    assert _legend_texts(fig) == [P.TIER_LABELS[t] for t in L.TIERS]
    assert "4,000 intermediate examples" in fig._suptitle.get_text()  # the size all sets share
    _check_saves(fig, "language_sets", tmp_path)


def test_distance_scatter(gains, tmp_path):
    fig = P.plot_distance(gains)
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("URIEL typological distance")
    assert ax.get_ylabel() == "gain over baseline (points)"
    texts = _legend_texts(fig)
    assert [P.TIER_LABELS[t] for t in L.TIERS] == [t for t in texts if t in P.TIER_LABELS.values()]
    assert any(t.startswith("least-squares fit") for t in texts)
    # seen languages sit at distance 0
    assert min(c.get_offsets()[:, 0].min() for c in ax.collections if len(c.get_offsets())) == 0.0
    _check_saves(fig, "distance", tmp_path)
    # without distance / seen columns they are computed from intermediate_languages
    bare = gains.drop(columns=["distance", "seen"])
    fig2 = P.plot_distance(bare)
    n_points = lambda f: sum(len(c.get_offsets()) for c in f.axes[0].collections[1:])
    assert n_points(fig2) == n_points(fig) > 0
    assert len(P.plot_language_sets(bare).axes) == 2


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


def test_intervals_are_over_seed_by_language_units():
    # 2 seeds x 3 languages x 2 tasks: a point pools the tasks inside each (seed, language) unit,
    # and its interval is Student t over the 6 units, as in stats.significance_table.
    rows = [dict(seed=s, language=l, task=t, tier="low", gain=float(g))
            for (s, l, t), g in zip(
                [(s, l, t) for s in (0, 1) for l in ("sw", "yo", "wo") for t in ("a", "b")],
                [1, 3, 2, 2, 0, 4, 5, 5, 1, 1, 3, 1])]
    agg = P._unit_ci(pd.DataFrame(rows), ["tier"], "gain")
    unit_means = [2, 2, 2, 5, 1, 2]
    m, lo, hi = S.mean_ci(unit_means)
    assert agg.loc[0, ["mean", "low", "high"]].tolist() == pytest.approx([m, lo, hi])
    assert agg.loc[0, "n_units"] == 6
    # over the two seed means alone (t with 1 df) the interval would be far wider
    assert S.mean_ci([2.0, 8 / 3])[2] - S.mean_ci([2.0, 8 / 3])[1] > 2.5 * (hi - lo)
