"""Every training run is validated on held-out data of its own task, and one that did not
clear its learning threshold is marked so (xfer_nb.learning), on real data with a tiny model."""

import pytest

from xfer_nb import config as C
from xfer_nb import data, io, learning, pipeline


def test_threshold_is_chance_plus_the_family_margin():
    nli = learning.verdict(["xnli"], 48.0)
    assert nli["chance"] == pytest.approx(33.3333, abs=1e-3)
    assert nli["learning_threshold"] == pytest.approx(48.3333, abs=1e-3) and not nli["learned"]
    assert learning.verdict(["xnli"], 48.34)["learned"]
    assert learning.verdict(["udpos"], 50.0) == {"validation_score": 50.0, "chance": 0.0,
                                                 "learning_threshold": 50.0, "learned": True}
    assert learning.verdict(["siqa"], 40.0)["learning_threshold"] == pytest.approx(100 / 3 + 15, abs=1e-3)
    # a run's own setting replaces the family margin; a multi-task run averages chance and margins
    assert learning.verdict(["udpos"], 30.0, learning_threshold=25.0)["learned"]
    both = learning.verdict(["xnli", "udpos"], 45.0)
    assert both["learning_threshold"] == pytest.approx((100 / 3 + 15 + 50) / 2, abs=1e-3)


def test_retrieval_tasks_have_no_threshold():
    with pytest.raises(ValueError, match="tatoeba"):
        learning.margin("tatoeba")


def test_bad_learning_threshold_is_refused_before_anything_runs():
    with pytest.raises(C.ConfigError, match="learning_threshold=-150.0"):
        C.from_dict(C.IntermediateConfig, {"learning_threshold": -150})
    with pytest.raises(C.ConfigError, match="learning_threshold='high'"):
        C.from_dict(C.TargetConfig, {"learning_threshold": "high"})
    with pytest.raises(C.ConfigError, match="held_out_examples=-1"):
        C.from_dict(C.PrepareConfig, {"held_out_examples": -1})


def test_validation_rows_are_in_no_subset_of_any_size():
    langs = ["en", "sw"]
    val = data.sample_validation("xnli", langs, 40, seed=5)
    biggest = data.intermediate_pool_size("xnli", langs, seed=5, held_out=40)
    train = data.sample_intermediate("xnli", langs, biggest, seed=5, held_out=40)
    key = lambda ds: {(l, i) for l, i in zip(ds["language"], ds["id"])}  # noqa: E731
    assert len(val) == 40 and not key(val) & key(train)
    # parallel data: no validation item is a translation of a trained item either
    assert not set(val["id"]) & set(train["id"])
    with pytest.raises(ValueError, match="larger than the pool"):
        data.sample_intermediate("xnli", langs, biggest + 2, seed=5, held_out=40)


@pytest.fixture(scope="module")
def validated_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    prep_dir, inter_dir, target_dir = root / "prepare", root / "intermediate", root / "target"
    prep_cfg = C.from_dict(C.PrepareConfig, dict(intermediate_task="xnli", intermediate_size=32, language_set="en",
                                                 intermediate_languages=["en"], seed=1, held_out_examples=24))
    pipeline.prepare(prep_cfg, str(prep_dir))
    io.write_json(prep_dir / "config.json", {"stage": "prepare", "config": C.to_dict(prep_cfg), "upstream": {}})
    io.write_json(inter_dir / "config.json", {"stage": "intermediate", "config": {}, "upstream": {},
                                              "upstream_dirs": {"prepare": str(prep_dir)}})
    inter_cfg = C.from_dict(C.IntermediateConfig, dict(model_name_or_path="embedded:tiny-random", max_steps=3,
                                                       per_device_train_batch_size=8, learning_rate=1e-3,
                                                       max_seq_length=48, seed=1))
    trained = pipeline.intermediate(inter_cfg, str(inter_dir), str(prep_dir))
    target_cfg = C.from_dict(C.TargetConfig, dict(model_name_or_path="embedded:tiny-random", target_task="udpos",
                                                  max_steps=2, per_device_train_batch_size=8, max_train_examples=16,
                                                  max_seq_length=48, eval_languages=["en", "yo"],
                                                  max_eval_examples=8, validation_examples=16, seed=1))
    evaluated = pipeline.target(target_cfg, str(target_dir), str(inter_dir))
    return prep_dir, trained, inter_dir, evaluated, target_dir


def test_prepare_saves_the_held_out_tail(validated_runs):
    prep_dir = validated_runs[0]
    train = pipeline.load_prepared(prep_dir)["xnli"]
    val = pipeline.load_prepared(prep_dir, pipeline.VALIDATION)["xnli"]
    assert len(train) == 32 and len(val) == 24 and not set(train["id"]) & set(val["id"])


def test_a_tiny_random_encoder_does_not_learn_and_says_so(validated_runs):
    _, trained, inter_dir, evaluated, target_dir = validated_runs
    for summary, run_dir, stage in ((trained.summary, inter_dir, "intermediate"),
                                    (evaluated.summary, target_dir, "target")):
        assert summary["learned"] is False, f"3 steps of a random 2-layer encoder cannot clear {stage}'s threshold"
        assert summary["validation_score"] < summary["learning_threshold"]
        rows = [r for r in io.read_jsonl(run_dir / "metrics.jsonl") if r["split"] == "validation"]
        recorded = learning.from_metrics(rows)
        assert recorded == {k: summary[k] for k in ("validation_score", "chance", "learning_threshold", "learned")}
    assert trained.summary["learning_threshold"] == pytest.approx(100 / 3 + 15, abs=1e-3)
    assert evaluated.summary["learning_threshold"] == 50.0 and evaluated.summary["validation_examples"] == 16


def test_a_lower_threshold_turns_the_same_score_into_learned(validated_runs):
    _, trained, *_ = validated_runs
    score = trained.summary["validation_score"]
    assert learning.verdict(["xnli"], score, learning_threshold=0.0)["learned"] == (score >= 100 / 3)
    assert not learning.verdict(["xnli"], score)["learned"]


def test_retrieval_reads_the_models_own_layer():
    assert pipeline.retrieval_layer("embedded:multilingual-e5-small", -1, 12) == 12
    assert pipeline.retrieval_layer("embedded:multilingual-e5-small", -2, 12) == 8
    assert pipeline.retrieval_layer("xlm-roberta-large", -1, 24) == 14
    assert pipeline.retrieval_layer("xlm-roberta-large", 3, 24) == 3
    with pytest.raises(C.ConfigError, match="retrieval_layer=-3"):
        C.from_dict(C.TargetConfig, {"retrieval_layer": -3})
