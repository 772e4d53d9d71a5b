"""Params files expand into validated, de-duplicated run specs with content-hashed ids."""
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
