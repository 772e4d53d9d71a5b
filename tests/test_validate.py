"""A whole plan is checked against the real data and the models before anything runs."""
import pytest

from xfer_nb import grid
from xfer_nb.config import ConfigError

BASE = {
    "axes": {"intermediate_task": ["none", "xnli"], "intermediate_size": [100], "target_task": ["udpos"], "seed": [0]},
    "language_sets": {"en": ["en"]},
    "settings": {"model_name_or_path": "embedded:tiny-random"},
    "target": {"eval_languages": ["en", "yo"]},
}


def test_a_valid_plan_passes(data_dir):
    plan = grid.expand(BASE)
    assert plan.counts() == {"prepare": 1, "intermediate": 1, "target": 2}


@pytest.mark.parametrize("change, needle", [
    ({"axes": {**BASE["axes"], "intermediate_size": [5000]}}, "intermediate_size=5000 is larger than the pool of 745 examples of xnli in ['en'] with held_out_examples=500"),
    ({"target": {"eval_languages": ["en", "xx"]}}, "eval_languages ['xx'] are not available for udpos"),
    ({"axes": {**BASE["axes"], "target_task": ["anli"]}}, "target_task='anli' is not an XTREME target task"),
    ({"axes": {**BASE["axes"], "intermediate_task": ["xnlii"]}}, "intermediate_task='xnlii' is not a known task"),
    ({"axes": {**BASE["axes"], "intermediate_task": ["qqp"]}}, "intermediate_task='qqp' has no local intermediate data"),
    ({"axes": {**BASE["axes"], "intermediate_task": ["mnli"], "intermediate_size": [16000]}},
     "intermediate_size=16000 is larger than the pool of 14501"),
    ({"settings": {"model_name_or_path": "embedded:nope"}}, "is not an embedded model"),
    ({"settings": {"model_name_or_path": "xlm-roberta-large"}}, "the Hugging Face hub is unreachable"),
])
def test_bad_values_fail_naming_the_value(data_dir, change, needle):
    with pytest.raises(ConfigError) as err:
        grid.expand({**BASE, **change})
    assert needle in str(err.value)


def test_planning_does_not_need_the_hub(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    params = grid.load_params(grid.Path(__file__).resolve().parent.parent / "params" / "xtreme.yaml")
    plan = grid.expand(params, for_running=False)
    assert plan.counts() == {"prepare": 153, "intermediate": 153, "target": 1404}
    with pytest.raises(ConfigError, match="hub is unreachable"):
        grid.expand(params, for_running=True)
