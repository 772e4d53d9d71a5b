"""Params files expand into validated, de-duplicated run specs with content-hashed ids."""
import json
import re
import textwrap

import pytest

from xfer_nb import config as C
from xfer_nb import grid

BASE = {
    "name": "t",
    "axes": {"intermediate_task": ["none", "xnli"], "intermediate_size": [64, 128], "language_set": ["en", "en+sw"],
             "target_task": ["pawsx", "udpos"], "seed": [0, 1]},
    "language_sets": {"en": ["en"], "en+sw": ["en", "sw"]},
    "settings": {"model_name_or_path": "embedded:tiny-random"},
    "intermediate": {"max_steps": 3},
    "target": {"eval_languages": {"udpos": ["yo", "en"]}},
}


def expand(params):
    return grid.expand(params, check_data=False)


def test_each_stage_runs_once_per_distinct_config():
    plan = expand(BASE)
    # prepare/intermediate: 2 sizes x 2 language sets x 2 seeds; the baseline has none
    assert plan.counts() == {"prepare": 8, "intermediate": 8, "target": 2 * 2 * (8 // 2 + 1)}
    # one intermediate run serves both target tasks
    inter_ids = [s.upstream.get("intermediate") for s in plan.stages["target"]]
    assert sum(1 for i in inter_ids if i is None) == 4  # baseline: 2 tasks x 2 seeds
    assert all(inter_ids.count(i) == 2 for i in set(inter_ids) if i)
    baseline = [s for s in plan.stages["target"] if not s.upstream]
    assert {s.run_id.split("--")[1].rsplit("-", 1)[0] for s in baseline} == {"baseline-s0", "baseline-s1"}
    udpos = [s for s in plan.stages["target"] if s.config["target_task"] == "udpos"]
    assert all(s.config["eval_languages"] == ["yo", "en"] for s in udpos)


def test_ids_are_stable_and_change_with_any_setting_upstream_included():
    a = {s.run_id for s in expand(BASE).all_specs()}
    assert a == {s.run_id for s in expand(BASE).all_specs()}
    changed = {**BASE, "intermediate": {"max_steps": 4}}
    b = expand(changed)
    same_prepare = {s.run_id for s in b.stages["prepare"]} == {s.run_id for s in expand(BASE).stages["prepare"]}
    assert same_prepare
    # the intermediate change reaches the target ids through the upstream hash
    old_targets = {s.run_id for s in expand(BASE).stages["target"] if s.upstream}
    assert not old_targets & {s.run_id for s in b.stages["target"] if s.upstream}
    # baselines do not depend on the intermediate stage at all
    assert {s.run_id for s in b.stages["target"] if not s.upstream} == {
        s.run_id for s in expand(BASE).stages["target"] if not s.upstream}


def test_exclusions_and_baseline_normalisation():
    params = {**BASE, "exclude": [{"language_set": "en+sw", "intermediate_size": 64}]}
    plan = expand(params)
    sizes = [(s.config["language_set"], s.config["intermediate_size"]) for s in plan.stages["prepare"]]
    assert ("en+sw", 64) not in sizes and ("en+sw", 128) in sizes
    baseline_points = [p for p in plan.points if p["intermediate_task"] == "none"]
    assert {(p["intermediate_size"], p["language_set"]) for p in baseline_points} == {(0, "none")}


@pytest.mark.parametrize("params, needle", [
    ({**BASE, "axes": {**BASE["axes"], "learning_rat": [1e-5]}}, "unknown axis 'learning_rat'"),
    ({**BASE, "intermediate": {"max_step": 3}}, "unknown parameter(s) ['max_step']"),
    ({**BASE, "intermediate": {"max_steps": "3"}}, "max_steps='3'"),
    ({**BASE, "target": {"learning_rate": 0}}, "learning_rate=0.0 is not allowed"),
    ({**BASE, "axes": {**BASE["axes"], "language_set": ["en+zz"]}}, "language_set='en+zz' is not defined"),
    ({**BASE, "settings": {"data_source": "web"}}, "data_source='web' is not allowed"),
    ({**BASE, "exclude": [{"colour": "red"}]}, "not axes"),
])
def test_bad_input_fails_before_anything_runs(params, needle):
    with pytest.raises(C.ConfigError) as err:
        expand(params)
    assert needle in str(err.value)


def test_yaml_is_loaded_safely_and_extends(tmp_path):
    (tmp_path / "base.yaml").write_text("settings: {max_seq_length: 64}\nintermediate: {max_steps: 9}\n")
    (tmp_path / "p.yaml").write_text(textwrap.dedent("""
        extends: base.yaml
        axes: {intermediate_task: [xnli], intermediate_size: [8], target_task: [pawsx]}
        intermediate: {learning_rate: 1.0e-4}
    """))
    params = grid.load_params(tmp_path / "p.yaml")
    assert params["intermediate"] == {"max_steps": 9, "learning_rate": 1e-4}
    assert params["name"] == "p"
    (tmp_path / "evil.yaml").write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(Exception) as err:
        grid.load_params(tmp_path / "evil.yaml")
    assert "python/object" in str(err.value)


def test_repository_params_files_expand():
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent / "params"
    for name in ("smoke.yaml",):
        plan = expand(grid.load_params(root / name))
        assert plan.counts()["target"] > 0


def test_target_fields_per_target_task():
    params = {**BASE, "target": {"eval_languages": {"udpos": ["yo", "en"]},
                                 "max_train_examples": {"udpos": 300, "default": 100},
                                 "num_train_epochs": {"pawsx": 3.0}}}
    targets = expand(params).stages["target"]
    by_task = {t: [s.config for s in targets if s.config["target_task"] == t] for t in ("udpos", "pawsx")}
    assert {c["max_train_examples"] for c in by_task["udpos"]} == {300}
    assert {c["max_train_examples"] for c in by_task["pawsx"]} == {100}
    assert {c["num_train_epochs"] for c in by_task["pawsx"]} == {3.0}
    assert {c["num_train_epochs"] for c in by_task["udpos"]} == {C.TargetConfig().num_train_epochs}
    assert {tuple(c["eval_languages"]) for c in by_task["pawsx"]} == {()}
    with pytest.raises(C.ConfigError, match=r"max_train_examples=.*'udpso'.*allowed keys"):
        expand({**params, "target": {"max_train_examples": {"udpso": 300}}})


def test_a_stage_version_bump_renews_its_ids_and_everything_downstream(monkeypatch):
    from xfer_nb import runs
    def ids(stage):   # ids are computed on access: take them now
        return {s.run_id for s in expand(BASE).stages[stage]}
    before = {stage: ids(stage) for stage in grid.STAGE_ORDER}
    monkeypatch.setitem(runs.STAGE_VERSIONS, "prepare", runs.STAGE_VERSIONS["prepare"] + 1)
    after = {stage: ids(stage) for stage in grid.STAGE_ORDER}
    for stage in ("prepare", "intermediate"):
        assert before[stage] and not before[stage] & after[stage]
    baselines = {s.run_id for s in expand(BASE).stages["target"] if not s.upstream}
    assert before["target"] & after["target"] == baselines   # baselines keep theirs


# ---- settings precedence (issue 12.9): one rule, and a note saying which value won

def test_settings_in_a_file_beat_a_stage_section_of_the_file_it_extends(tmp_path):
    """The case issue #12 found: a study file sets `settings: eval_batch_size: 8` and the file it
    extends sets `target: eval_batch_size: 64`. The file that extends wins, and the plan says so."""
    (tmp_path / "defaults.yaml").write_text("settings: {model_name_or_path: embedded:tiny-random}\n"
                                            "target: {eval_batch_size: 64}\n")
    (tmp_path / "study.yaml").write_text("extends: defaults.yaml\naxes: {target_task: [pawsx]}\n"
                                         "settings: {eval_batch_size: 8}\n")
    plan = grid.expand(grid.load_params(tmp_path / "study.yaml"), check_data=False)
    assert {s.config["eval_batch_size"] for s in plan.stages["target"]} == {8}
    assert any("eval_batch_size: 8 from settings in study.yaml wins over target: eval_batch_size: 64 in defaults.yaml"
               in note for note in plan.notes), plan.notes


def test_a_stage_section_beats_settings_of_the_file_it_extends(tmp_path):
    (tmp_path / "base.yaml").write_text("settings: {eval_batch_size: 8, model_name_or_path: embedded:tiny-random}\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\naxes: {target_task: [pawsx]}\ntarget: {eval_batch_size: 32}\n")
    plan = grid.expand(grid.load_params(tmp_path / "child.yaml"), check_data=False)
    assert plan.stages["target"][0].config["eval_batch_size"] == 32
    assert plan.notes == ["target.eval_batch_size: 32 from target in child.yaml wins over settings: eval_batch_size: 8 "
                          "in base.yaml (a file beats the file it extends)"]


def test_one_file_giving_a_key_in_settings_and_a_stage_section_is_rejected(tmp_path):
    (tmp_path / "p.yaml").write_text("axes: {target_task: [pawsx]}\nsettings: {eval_batch_size: 8}\n"
                                     "target: {eval_batch_size: 64}\n")
    with pytest.raises(C.ConfigError, match="eval_batch_size is given twice with different values"):
        grid.load_params(tmp_path / "p.yaml")
    # the same value twice is no conflict
    (tmp_path / "p.yaml").write_text("axes: {target_task: [pawsx]}\nsettings: {eval_batch_size: 8}\n"
                                     "target: {eval_batch_size: 8}\n")
    assert grid.load_params(tmp_path / "p.yaml").notes == []


def test_intermediate_fields_per_intermediate_task():
    params = {**BASE, "axes": {**BASE["axes"], "intermediate_task": ["none", "xnli", "udpos"]},
              "intermediate": {"learning_rate": {"udpos": 3.0e-4, "default": 5.0e-5}}}
    plan = expand(params)
    by_task = {}
    prepare = {s.run_id: s.config for s in plan.stages["prepare"]}
    for spec in plan.stages["intermediate"]:
        by_task.setdefault(prepare[spec.upstream["prepare"]]["intermediate_task"], set()).add(spec.config["learning_rate"])
    assert by_task == {"udpos": {3.0e-4}, "xnli": {5.0e-5}}
    with pytest.raises(C.ConfigError, match=r"intermediate: learning_rate=.*'udpso'"):
        expand({**params, "intermediate": {"learning_rate": {"udpso": 1e-4}}})


@pytest.mark.parametrize("name", ["study", "study-large", "study-diversity", "study-diversity-8192",
                                  "study-diversity-2pass", "stream-check",
                                  "stream-check-udpos", "word-token-check", "smoke", "xtreme"])
def test_every_shipped_params_file_passes_validation_against_the_data(name, data_dir):
    from xfer_nb.paths import REPO_ROOT
    plan = grid.expand(grid.load_params(REPO_ROOT / "params" / f"{name}.yaml"), for_running=False)
    assert plan.stages["target"]
    for spec in plan.stages["intermediate"]:
        if spec.config["size_schedule"] == "stream":
            assert spec.config["stream_sizes"], spec.run_id


def test_the_two_pass_diversity_study_trains_english_and_every_set_with_one_recipe():
    """The English control is budget-matched only if it trains as the sets do: same pairs
    count, same passes, same schedule; only the language set and the seed may differ."""
    from xfer_nb.paths import REPO_ROOT
    plan = grid.expand(grid.load_params(REPO_ROOT / "params" / "study-diversity-2pass.yaml"), check_data=False)
    prepare = {s.run_id: s.config for s in plan.stages["prepare"]}
    specs = plan.stages["intermediate"]
    recipes = {json.dumps({k: v for k, v in s.config.items() if k != "seed"}, sort_keys=True) for s in specs}
    assert len(recipes) == 1
    recipe = json.loads(recipes.pop())
    assert (recipe["num_train_epochs"], recipe["size_schedule"], recipe["per_device_train_batch_size"]) == (2.0, "separate", 32)
    sets = {(prepare[s.upstream["prepare"]]["language_set"], prepare[s.upstream["prepare"]]["intermediate_size"]) for s in specs}
    assert sets == {(s, 4096) for s in ("en", "en+near-a", "en+near-b", "en+near-c", "en+far-a", "en+far-b", "en+far-c")}
    assert len(specs) == 7 * 5


def test_the_quick_study_s_runs_are_all_runs_of_study_large_and_the_diversity_study_shares_its_controls():
    from xfer_nb.paths import REPO_ROOT
    specs = {name: grid.expand(grid.load_params(REPO_ROOT / "params" / f"{name}.yaml"), check_data=False).all_specs()
             for name in ("study", "study-large", "study-diversity")}
    ids = {name: {s.run_id for s in ss} for name, ss in specs.items()}
    assert ids["study"] <= ids["study-large"]
    # the diversity study stands alone, but its English runs (baseline, MultiNLI 4,096 and
    # their XNLI and Tatoeba targets) are the large study's own: a clone that ran one reuses them
    mixed = {i for i in ids["study-diversity"] if "-en+" in i}   # run ids name the language set
    english = ids["study-diversity"] - mixed
    assert english and english <= ids["study-large"]
    assert {re.search(r"en\+\w+-\w", i).group() for i in mixed} == {"en+near-a", "en+near-b", "en+near-c",
                                                                     "en+far-a", "en+far-b", "en+far-c"}


def test_the_word_token_check_differs_from_the_large_baseline_in_that_setting_only():
    from xfer_nb.paths import REPO_ROOT
    def baseline(name):
        plan = grid.expand(grid.load_params(REPO_ROOT / "params" / f"{name}.yaml"), check_data=False)
        return {s.config["seed"]: s.config for s in plan.stages["target"]
                if s.config["target_task"] == "udpos" and s.run_id.startswith("udpos--baseline")}
    check, large = baseline("word-token-check"), baseline("study-large")
    assert sorted(check) == [0, 1, 2]
    for seed, cfg in check.items():
        assert {k for k in cfg if cfg[k] != large[seed].get(k)} == {"word_label_token"}


def test_a_field_added_at_its_neutral_default_keeps_run_ids():
    """word_label_token came after finished runs: at 'first' (the old behaviour) it is not part
    of the id, so those runs stay valid; 'first_content' is a different run."""
    from xfer_nb.runs import NEUTRAL_DEFAULTS, RunSpec
    base = {"target_task": "udpos", "seed": 0, "max_seq_length": 128}
    old = RunSpec("target", base, label="udpos--baseline-s0")
    assert NEUTRAL_DEFAULTS["word_label_token"] == C.TargetConfig.__dataclass_fields__["word_label_token"].default
    assert RunSpec("target", {**base, "word_label_token": "first"}, label=old.label).run_id == old.run_id
    assert RunSpec("target", {**base, "word_label_token": "first_content"}, label=old.label).run_id != old.run_id
