"""The study's answer on constructed tables whose effects are known: the primary family with
the seed as the unit, equivalence and inconclusive verdicts, runs that did not learn, a
partial study, and a baseline-only study."""
import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest

from xfer_nb import analysis, analysis_params
from xfer_nb import languages as L

LANGS = ("en", "sw", "yo", "wo", "mr", "jv", "ur", "bn", "de", "tr", "hi", "ar")  # 5 low, 2 mid, 4 high + en
SETS = {"en": ["en"], "en+close": ["en", "de"], "en+far": ["en", "ar", "sw"]}
PARAMS = analysis_params.parse({"primary": list(analysis_params.HYPOTHESES),
                                "positive_control": {"intermediate_task": "nli", "task": "xnli"},
                                "smallest_effect": 1.0})


def table(gain_fn, seeds=range(5), seed_sd=0.0, noise_sd=0.0, tasks=("udpos", "xnli"), rng_seed=0):
    """nli at 250/1000/4000 in English and the two multilingual sets at 1000; a baseline;
    value = baseline + gain_fn(size, set, language) + a seed effect + noise."""
    rng = np.random.default_rng(rng_seed)
    configs = [("nli", n, "en") for n in (250, 1000, 4000)] + [("nli", 1000, "en+close"), ("nli", 1000, "en+far")]
    rows = []
    seed_effect = {(s, c): rng.normal(0, seed_sd) for s in seeds for c in configs}
    for seed, task, lang in itertools.product(seeds, tasks, LANGS):
        base = float(rng.uniform(30, 70))
        common = dict(seed=seed, task=task, language=lang, split="test", metric={"udpos": "f1", "xnli": "accuracy"}[task],
                      tier=L.tier(lang), target_learned=True)
        rows.append(dict(common, run_id=f"{task}-base-{seed}", intermediate_task="none", intermediate_size=0,
                         language_set="none", intermediate_languages="", intermediate_run="", seen=False,
                         distance=math.nan, value=base, intermediate_learned=None))
        for it, n, s in configs:
            value = base + gain_fn(n, s, lang) + seed_effect[seed, (it, n, s)] + rng.normal(0, noise_sd)
            rows.append(dict(common, run_id=f"{task}-{it}-{n}-{s}-{seed}", intermediate_task=it, intermediate_size=n,
                             language_set=s, intermediate_languages=",".join(SETS[s]),
                             intermediate_run=f"inter-{it}-{n}-{s}-{seed}", seen=lang in SETS[s],
                             distance=L.distance_to_set(lang, SETS[s]), value=value, intermediate_learned=True))
    return pd.DataFrame(rows)


def study(df, tmp_path, **kw):
    return analysis.Study("constructed", df, tmp_path, params=kw.pop("params", PARAMS), **kw)


def primary(s):
    sig = s.significance_rows
    return sig[sig["family"] == "primary"].set_index(["hypothesis", "task"])


def test_size_trend_on_low_resource_languages_is_found_with_the_seed_as_unit(tmp_path):
    # +1 point per doubling on low-resource languages only; seed effects of SD 0.3 per run
    def gain(n, s, lang):
        return math.log2(n / 250) if L.tier(lang) == "low" else 0.0
    s = study(table(gain, seed_sd=0.3, noise_sd=0.3), tmp_path)
    p = primary(s)
    row = p.loc[("size_trend", "xnli")]
    assert row["estimate"] == pytest.approx(1.0, abs=0.15)
    assert row["verdict"] == "gain" and row["ci_low"] > 0 and row["n_seeds"] == 5
    assert row["n_languages"] == 5  # sw yo wo mr jv: English and seen languages excluded
    assert row["effect_unit"] == "points per doubling" and row["unit_of_inference"].startswith("seed")
    inter = p.loc[("tier_interaction_size", "udpos")]
    assert inter["estimate"] == pytest.approx(1.0, abs=0.15) and inter["verdict"] == "gain"
    # Holm runs over the primary family only; exploratory rows keep raw p and no p_holm
    sig = s.significance_rows
    fam = sig[sig["family"] == "primary"]
    assert len(fam) == 2 * 4 + 1  # 4 per-task hypotheses x 2 tasks + the positive control
    assert (fam["p_holm"] >= fam["p"] - 1e-12).all()
    assert sig.loc[sig["family"] == "exploratory", "p_holm"].isna().all()
    text = s.answer()
    assert "**Size, xnli**" in text and "— a gain." in text
    assert text.index("Primary family") < text.index("Limitations") < text.index("exploratory")


def test_no_effect_needs_equivalence_else_inconclusive(tmp_path):
    flat = study(table(lambda n, s, lang: 0.0, noise_sd=0.05), tmp_path)
    p = primary(flat)
    assert p.loc[("size_trend", "udpos"), "verdict"] == "equivalent (no effect)"
    assert p.loc[("diversity", "udpos"), "verdict"] == "equivalent (no effect)"
    assert p.loc[("positive_control", "xnli"), "verdict"] == "equivalent (no effect)"
    assert "not detected, so this study cannot detect effects" in flat.answer()
    noisy = study(table(lambda n, s, lang: 0.0, seeds=range(2), seed_sd=4.0, noise_sd=2.0), tmp_path)
    p = primary(noisy)
    for h in ("size_trend", "diversity", "positive_control"):  # seed effects of SD 4 on 2 seeds
        assert set(p.loc[h, "verdict"]) == {"inconclusive"}, h
        assert (p.loc[h, "mde_80"] > 1.0).all()


def test_diversity_against_the_budget_matched_english_control(tmp_path):
    # en+far adds 2 points on low-resource languages it does not contain; en+close nothing
    def gain(n, s, lang):
        return 2.0 if s == "en+far" and L.tier(lang) == "low" else 0.0
    s = study(table(gain, seed_sd=0.2, noise_sd=0.2), tmp_path)
    assert s.english_set == "en"
    div = s.set_diversity.set_index("language_set")
    assert div.loc["en+far", "mean_pairwise_distance"] > div.loc["en+close", "mean_pairwise_distance"]
    assert div.loc["en+far", "n_families"] == 3 and div.loc["en+far", "n_scripts"] == 2
    row = primary(s).loc[("diversity", "xnli")]
    assert row["language_set"] == "en+far" and row["versus"] == "en"
    assert row["estimate"] == pytest.approx(2.0, abs=0.2) and row["verdict"] == "gain"
    assert row["n_languages"] == 4  # low-resource, unseen by en+far: yo wo mr jv (sw is seen)
    assert primary(s).loc[("tier_interaction_diversity", "xnli"), "verdict"] == "gain"
    csv = s.significance()
    for col in ("unit_of_inference", "n_seeds", "mde_80", "verdict", "family", "p_holm", "tost_p", "smallest_effect"):
        assert col in csv.columns


def test_diversity_rows_only_where_the_diverse_sets_were_trained_and_low_languages_are_unseen(tmp_path):
    # the multilingual sets get no UD-POS target (as study-diversity.yaml); on XNLI the only
    # low-resource evaluation language, sw, is inside the most diverse set
    df = table(lambda n, s, lang: 0.0, seed_sd=0.2, noise_sd=0.2)
    df = df[~((df["language_set"].isin(["en+close", "en+far"])) & (df["task"] == "udpos"))]
    df = df[~df["language"].isin(["yo", "wo", "mr", "jv"]) | (df["task"] == "udpos")]
    p = primary(study(df, tmp_path))
    assert ("diversity", "udpos") not in p.index and ("tier_interaction_diversity", "udpos") not in p.index
    assert ("size_trend", "udpos") in p.index   # the English size axis still has its UD-POS rows
    row = p.loc[("diversity", "xnli")]
    assert row["note"] == "not testable: no low-resource evaluation language of xnli is unseen by en+far"
    assert pd.isna(row["estimate"])


def test_a_level_s_set_that_lost_a_seed_leaves_its_test_and_the_row_says_so(tmp_path):
    # one level of two sets; en+far's intermediate run of seed 3 did not learn. The test keeps
    # 5 seeds on en+close's items rather than mixing sets per seed, and names what it used
    def gain(n, s, lang):
        return {"en+close": 1.0, "en+far": 4.0}.get(s, 0.0) if L.tier(lang) == "low" else 0.0
    df = table(gain, seed_sd=0.1, noise_sd=0.1)
    df.loc[df["intermediate_run"] == "inter-nli-1000-en+far-3", "intermediate_learned"] = False
    params = analysis_params.parse({"primary": ["diversity"], "english_control": "en",
                                    "diversity_levels": {"mixed": ["en+close", "en+far"]}})
    s = study(df, tmp_path, params=params)
    row = primary(s).loc[("diversity", "udpos")]
    assert row["language_set"] == "en+close" and row["n_seeds"] == 5
    assert "(en+far left out: the test keeps the languages every seed has" in s.answer()
    assert row["estimate"] == pytest.approx(1.0, abs=0.2)
    assert row["note"].startswith("en+far left out") and "did not learn in every seed" in row["note"]
    df["intermediate_learned"] = True   # every run learned: both sets, one mean per seed
    row = primary(study(df, tmp_path, params=params)).loc[("diversity", "udpos")]
    assert row["language_set"] == "en+close,en+far" and pd.isna(row["note"])


def test_a_partial_study_tests_the_planned_primary_level_not_the_one_that_finished_first(tmp_path):
    # levels close (en+close) and far (en+far): far is the more diverse, so it is the primary
    # level. With none of en+far's runs finished, the primary row waits for it instead of
    # testing en+close; with 3 of its 5 seeds finished, it is left out as unfinished (not as
    # a set that did not learn)
    def gain(n, s, lang):
        return {"en+close": 1.0, "en+far": 4.0}.get(s, 0.0) if L.tier(lang) == "low" else 0.0
    df = table(gain, seed_sd=0.1, noise_sd=0.1)
    params = analysis_params.parse({"primary": ["diversity"], "english_control": "en",
                                    "diversity_levels": {"close": ["en+close"], "far": ["en+far"]}})
    planned = {name: ",".join(langs) for name, langs in SETS.items()}
    no_far = df[df["language_set"] != "en+far"]
    row = primary(study(no_far, tmp_path, params=params, planned_sets=planned)).loc[("diversity", "udpos")]
    assert pd.isna(row["estimate"]) and row["comparison"] == "far minus en"
    assert row["note"] == "not testable yet: far (en+far) has no finished run"
    # without the plan's sets (a table alone), the finished level is all there is to test
    row = primary(study(no_far, tmp_path, params=params)).loc[("diversity", "udpos")]
    assert row["language_set"] == "en+close" and row["estimate"] == pytest.approx(1.0, abs=0.2)

    two_levels = analysis_params.parse({"primary": ["diversity"], "english_control": "en",
                                        "diversity_levels": {"mixed": ["en+close", "en+far"]}})
    part_far = df[~((df["language_set"] == "en+far") & (df["seed"] >= 3))]
    row = primary(study(part_far, tmp_path, params=two_levels, planned_sets=planned)).loc[("diversity", "udpos")]
    assert row["language_set"] == "en+close" and row["n_seeds"] == 5
    assert row["note"] == ("en+far left out: the test keeps the languages every seed has, and en+far has no "
                           "finished run in every seed yet")


def test_runs_that_did_not_learn_are_counted_shown_and_kept_out(tmp_path):
    def gain(n, s, lang):
        return 1.0
    df = table(gain, noise_sd=0.1)
    # seed 0's intermediate nli run at 4000 did not learn: both its target runs go; and the
    # xnli baseline of seed 1 did not learn: every xnli gain of seed 1 goes
    bad_inter = df["intermediate_run"] == "inter-nli-4000-en-0"
    df.loc[bad_inter, "intermediate_learned"] = False
    df.loc[bad_inter, "value"] += 50.0  # would dominate the answer if it were kept
    df.loc[df["run_id"] == "xnli-base-1", "target_learned"] = False
    s = study(df, tmp_path)
    nl = s.not_learned()
    assert sorted(nl["stage"]) == ["intermediate", "target"]
    assert nl.set_index("stage").loc["intermediate", "target runs excluded"] == 2
    g = s.gains
    assert not ((g["intermediate_size"] == 4000) & (g["seed"] == 0)).any()
    assert not ((g["task"] == "xnli") & (g["seed"] == 1)).any()
    assert g["gain"].max() < 2.0
    text = s.answer()
    assert "**Runs that did not learn**: 1 intermediate and 1 target run(s)" in text
    assert "(3 target run(s))" in text


def test_size_rows_only_for_targets_the_grid_trains_after_the_size_task(tmp_path):
    # a third target task trained only after the baseline and a one-size "mc" task (as
    # study-large trains XNLI only after MultiNLI): no size hypothesis for it, by design; a
    # target whose size-axis runs all failed to learn stays in the family as not testable
    df = table(lambda n, s, lang: 1.0, noise_sd=0.1)
    extra = df[(df["task"] == "xnli") & (df["intermediate_task"] == "none")].assign(task="pawsx", metric="accuracy")
    extra["run_id"] = extra["run_id"].str.replace("xnli", "pawsx")
    mc = extra.assign(intermediate_task="mc", intermediate_size=1000, language_set="en", intermediate_languages="en",
                      intermediate_run="inter-mc", intermediate_learned=True, value=extra["value"] + 1.0,
                      run_id=extra["run_id"] + "-mc")
    df = pd.concat([df, extra, mc], ignore_index=True)
    df.loc[(df["task"] == "udpos") & (df["intermediate_task"] == "nli") & (df["language_set"] == "en"),
           "intermediate_learned"] = False
    p = primary(study(df, tmp_path))
    assert ("size_trend", "pawsx") not in p.index and ("tier_interaction_size", "pawsx") not in p.index
    assert p.loc[("size_trend", "xnli"), "n_seeds"] == 5
    assert p.loc[("size_trend", "udpos"), "note"].startswith("not testable")


def test_distance_slope_per_task_with_a_random_intercept_per_language(tmp_path):
    # every zero-shot score falls 2 points per 0.1 of URIEL distance to the set's languages
    df = table(lambda n, s, lang: 0.0, noise_sd=0.3)
    df["value"] -= 20.0 * df["distance"].fillna(0.0)
    sig = study(df, tmp_path).significance_rows
    rows = sig[sig["hypothesis"] == "distance"].set_index("task")
    assert sorted(rows.index) == ["udpos", "xnli"] and (rows["family"] == "exploratory").all()
    for task in ("udpos", "xnli"):   # from the one size all three sets share (1,000): 8 noisy studies gave -1.91..-2.15
        assert rows.loc[task, "estimate"] == pytest.approx(-2.0, abs=0.25)
        assert rows.loc[task, "ci_high"] < 0
        assert rows.loc[task, "n_seeds"] == 5
    assert "random intercept per language" in rows.loc["xnli", "comparison"]


def test_sets_are_compared_only_within_the_condition_they_share(tmp_path):
    # no distance effect; an English-only task (pos) costs 20 points everywhere: pooled into
    # "English", it would make the multilingual sets look better the farther the language
    df = table(lambda n, s, lang: 0.0, noise_sd=0.3)
    pos = df[(df["intermediate_task"] == "nli") & (df["language_set"] == "en")].copy()
    pos["intermediate_task"], pos["value"] = "pos", pos["value"] - 20.0
    pos["run_id"] = pos["run_id"].str.replace("nli", "pos")
    pos["intermediate_run"] = pos["intermediate_run"].str.replace("nli", "pos")
    s = study(pd.concat([df, pos], ignore_index=True), tmp_path)
    assert set(s.set_comparable["intermediate_task"]) == {"nli"}
    assert set(s.set_comparable["intermediate_size"]) == {1000}
    rows = s.significance_rows.set_index(["hypothesis", "task"])
    for task in ("udpos", "xnli"):
        assert rows.loc[("distance", task), "estimate"] == pytest.approx(0.0, abs=0.3)
        assert rows.loc[("set_vs_english", task), "estimate"].abs().max() < 0.5


def test_genus_mates_of_the_added_languages_against_the_set_s_other_languages(tmp_path):
    # en+close adds Hindi here: its Indic genus-mates (mr ur bn) gain 3 points more than the
    # set's other unseen languages, against the English control
    indic = {"mr", "ur", "bn"}
    df = table(lambda n, s, lang: 3.0 if s == "en+close" and lang in indic else 0.0, seed_sd=0.2, noise_sd=0.2)
    close = df["language_set"] == "en+close"
    df.loc[close, "intermediate_languages"] = "en,de,hi"
    df.loc[close & (df["language"] == "hi"), "seen"] = True
    sig = study(df, tmp_path).significance_rows
    rows = sig[sig["hypothesis"] == "genus_mates"].set_index(["language_set", "task"])
    assert set(rows.index) == {("en+close", "udpos"), ("en+close", "xnli")}   # en+far's ar, sw have no unseen mates
    row = rows.loc[("en+close", "xnli")]
    assert "(bn mr ur)" in row["comparison"] and row["family"] == "exploratory"
    assert row["estimate"] == pytest.approx(3.0, abs=0.3) and row["verdict"] == "gain" and row["n_seeds"] == 5


def test_a_partial_study_says_so_and_never_replaces_a_complete_report(tmp_path):
    df = table(lambda n, s, lang: 1.0, noise_sd=0.1)
    complete = study(df, tmp_path)
    paths = complete.save()
    assert json.loads(paths["status"].read_text()) == {"complete": True, "missing": []}
    assert analysis.report_path(tmp_path, "constructed").name == "constructed.html"
    before = paths["answer"].read_text()
    partial = study(df[df["seed"] != 4], tmp_path, missing=["target run udpos-nli-4000-en-4 (seed=4, ...)"])
    assert partial.title().startswith("# PARTIAL — 1 planned run(s) missing")
    assert partial.answer().startswith("**PARTIAL: this report analyses only the finished runs; 1 planned run(s)")
    ppaths = partial.save()
    assert ppaths["answer"].name == "constructed-partial-answer.md"
    assert paths["answer"].read_text() == before, "the complete report is untouched"
    assert analysis.report_path(tmp_path, "constructed").name == "constructed-partial.html"
    # without a complete report, a partial one takes the main name (marked PARTIAL inside)
    other = tmp_path / "fresh"
    p2 = study(df, other, missing=["x"]).save()
    assert p2["answer"].name == "constructed-answer.md" and "PARTIAL" in p2["answer"].read_text().splitlines()[0]


def test_a_baseline_only_study_reports_baseline_scores(tmp_path):
    df = table(lambda n, s, lang: 0.0)
    base = df[df["intermediate_task"] == "none"]
    s = study(base, tmp_path)
    text = s.answer()
    assert "no gains were computed" in text
    bt = s.baseline_table()
    assert list(bt.columns) == ["Target task", "Metric", "Tier", "Language", "Score", "Seeds"]
    assert len(bt) == 2 * len(LANGS) and set(bt["Tier"]) == {"low", "mid", "high"}
    paths = s.save()
    assert paths["answer"].is_file() and not paths["significance"].exists()
    assert s.make_figures() == {}
    assert s.diversity_table().empty and len(s.language_tables()["xnli"]) == len(LANGS)


def test_report_tables_are_for_people(tmp_path):
    s = study(table(lambda n, s, lang: 0.5, seed_sd=0.5, noise_sd=0.5), tmp_path)
    t = s.primary_table()
    assert list(t.columns) == ["Comparison", "Target task", "Languages", "Estimate", "95% CI", "Holm p", "Seeds",
                               "Languages (n)", "MDE (80% power)", "Verdict"]
    assert "p (raw, exploratory)" in s.exploratory_table().columns
    assert t["Estimate"].str.match(r"^[+-]\d+\.\d{1,2} points").all()
    html = analysis.show(t).to_html()
    assert "<th" in html and "row0" in html and "level0_row0" not in html  # no index column
    assert not s.exploratory_table()["Verdict"].str.contains("nan").any()
    base = analysis.show(s.baseline_table()).to_html()
    assert "00000<" not in base, "numbers are shown as rounded, not with a fixed 6 decimals"
    comparison = analysis.show(s.comparison()).to_html()
    assert ">nan<" not in comparison and ">–<" in comparison   # tasks not in the study: a dash


def test_params_block_is_checked():
    with pytest.raises(analysis_params.AnalysisParamsError, match="analysis.primary: unknown hypothesis"):
        analysis_params.parse({"primary": ["size"]})
    with pytest.raises(analysis_params.AnalysisParamsError, match="smallest_effect"):
        analysis_params.parse({"smallest_effect": 0})
    with pytest.raises(analysis_params.AnalysisParamsError, match="positive_control is not set"):
        analysis_params.parse({"primary": ["positive_control"]})
    with pytest.raises(analysis_params.AnalysisParamsError, match="unknown key"):
        analysis_params.parse({"primery": []})
    default = analysis_params.parse(None)
    assert "positive_control" not in default.primary and default.smallest_effect == 1.0 and len(default.primary) == 4
    assert "positive_control" not in analysis_params.parse({"smallest_effect": 2}).primary


def test_params_file_takes_an_analysis_block(tmp_path):
    from pathlib import Path
    from xfer_nb import grid
    root = Path(__file__).resolve().parent.parent / "params"
    p = tmp_path / "with-analysis.yaml"
    p.write_text(f"extends: {root / 'smoke.yaml'}\nname: with-analysis\nanalysis:\n  primary: [size_trend]\n"
                 "  smallest_effect: 0.5\n")
    params = grid.load_params(p)
    plan = grid.expand(params, check_data=False)
    smoke = grid.expand(grid.load_params(root / "smoke.yaml"), check_data=False)
    assert [s.run_id for s in plan.stages["target"]] == [s.run_id for s in smoke.stages["target"]]  # runs unchanged
    parsed = analysis_params.parse(params["analysis"])
    assert parsed.primary == ("size_trend",) and parsed.smallest_effect == 0.5


def test_the_limitations_state_the_passes_the_intermediate_runs_made(tmp_path):
    df = table(lambda n, s, lang: 0.0, seeds=range(2), tasks=("xnli",))
    assert "short intermediate training" in study(df, tmp_path).limitations()   # a table from before the column
    df["intermediate_epochs"] = np.where(df["intermediate_task"] == "none", None, 1.0)
    assert "one pass over the intermediate data" in study(df, tmp_path).limitations()
    df.loc[df["language_set"] != "en", "intermediate_epochs"] = 2.0
    text = study(df, tmp_path).limitations()
    assert "1 or 2 passes over the intermediate data" in text and "one epoch" not in text


def test_the_limitations_state_the_study_s_own_budget(tmp_path):
    """Seeds, sizes and machines come from the runs: a GPU study is not told it ran on a 2-core CPU."""
    df = table(lambda n, s, lang: 0.0, seeds=range(3), tasks=("xnli",))
    text = study(df, tmp_path).limitations()
    assert "The budget: 3 seed(s), 250 to 4,000 intermediate training examples per run" in text
    assert "2-core" not in text and "trained on" not in text      # no machine recorded: none named
    df["machine"] = "Some CPU [avx2]"
    df["intermediate_machine"] = np.where(df["intermediate_run"] == "", "", "Some GPU host [avx512f]")
    text = study(df, tmp_path).limitations()
    assert "trained on Some CPU [avx2] and Some GPU host [avx512f]" in text   # most runs first
