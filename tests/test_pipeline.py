"""Both phases on real data with a tiny encoder (the real XLM-R vocabulary), then zero-shot
evaluation in several languages of several tasks, through the stage functions the notebooks call."""

import pytest

from xfer_nb import config as C
from xfer_nb import io, pipeline


@pytest.fixture(scope="module")
def intermediate_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    prep_dir, inter_dir = root / "prepare", root / "intermediate"
    prep_cfg = C.from_dict(C.PrepareConfig, dict(intermediate_task="xnli", intermediate_size=48, language_set="en+sw",
                                                 intermediate_languages=["en", "sw"], seed=3))
    prepared = pipeline.prepare(prep_cfg, str(prep_dir))
    # what the sweep records: the stage's config and its upstream folders
    io.write_json(prep_dir / "config.json", {"stage": "prepare", "config": C.to_dict(prep_cfg), "upstream": {}})
    io.write_json(inter_dir / "config.json", {"stage": "intermediate", "config": {}, "upstream": {},
                                              "upstream_dirs": {"prepare": str(prep_dir)}})
    inter_cfg = C.from_dict(C.IntermediateConfig, dict(model_name_or_path="embedded:tiny-random", max_steps=6,
                                                       per_device_train_batch_size=8, learning_rate=5e-3,
                                                       max_seq_length=64, logging_steps=1, seed=3))
    trained = pipeline.intermediate(inter_cfg, str(inter_dir), str(prep_dir))
    return prepared, trained, inter_dir


def test_prepare_spreads_the_subset_over_languages(intermediate_run):
    prepared, _, _ = intermediate_run
    counts = dict(zip(prepared.summary["language"], prepared.summary["examples"]))
    assert counts == {"en": 24, "sw": 24}
    # parallel XNLI: each language gets different source items
    ids = {lang: set(prepared.sets["xnli"].filter(lambda r: r["language"] == lang)["id"]) for lang in counts}
    assert not ids["en"] & ids["sw"]


def test_intermediate_trains_and_saves_only_the_encoder(intermediate_run):
    _, trained, inter_dir = intermediate_run
    assert trained.summary["steps"] == 6 and len(trained.log) == 6
    assert (inter_dir / "encoder" / "model.safetensors").is_file()
    assert (inter_dir / "encoder" / "tokenizer.json").is_file()
    assert not (inter_dir / "checkpoints").exists(), "a finished stage drops its checkpoints"
    from safetensors.numpy import load_file
    from xfer_nb.models.embedded import resolve_model
    base = load_file(f"{resolve_model('embedded:tiny-random')}/model.safetensors")
    tuned = load_file(str(inter_dir / "encoder" / "model.safetensors"))
    assert set(tuned) <= set(base), "no head weights in the saved encoder"
    changed = [k for k in tuned if abs(tuned[k] - base[k]).max() > 1e-4]
    assert "encoder.layer.0.attention.self.query.weight" in changed


def test_a_mixed_set_is_validated_per_language_beside_its_pooled_verdict(intermediate_run):
    from xfer_nb import learning
    _, trained, inter_dir = intermediate_run
    rows = [r for r in io.read_jsonl(inter_dir / "metrics.jsonl") if r["split"] == "validation"]
    per = {r["language"]: r for r in rows if r["metric"] == "validation_score" and r["language"] != "all"}
    assert sorted(per) == ["en", "sw"] and all(r["task"] == "xnli" and r["n_examples"] > 0 for r in per.values())
    pooled = sum(r["value"] * r["n_examples"] for r in per.values()) / sum(r["n_examples"] for r in per.values())
    assert pooled == pytest.approx(trained.summary["validation_score"], abs=1e-3), "the verdict is the pooled score"
    assert learning.from_metrics(rows)["validation_score"] == trained.summary["validation_score"]
    assert trained.summary["validation_by_language"] == {f"xnli {k}": r["value"] for k, r in per.items()}


@pytest.mark.parametrize("task, languages, metric", [
    ("pawsx", ["en", "de", "ko"], "accuracy"),
    ("udpos", ["en", "yo", "wo"], "f1"),
    ("panx", ["sw", "yo", "my"], "f1"),
    ("tatoeba", ["sw", "am", "fr"], "accuracy"),
])
def test_target_zero_shot_in_several_languages(intermediate_run, tmp_path, task, languages, metric):
    _, _, inter_dir = intermediate_run
    cfg = C.from_dict(C.TargetConfig, dict(model_name_or_path="embedded:tiny-random", target_task=task, max_steps=3,
                                           per_device_train_batch_size=8, learning_rate=1e-3, max_seq_length=64,
                                           max_train_examples=48, eval_languages=languages, max_eval_examples=20,
                                           logging_steps=1, seed=3))
    evaluated = pipeline.target(cfg, str(tmp_path), str(inter_dir))
    rows = io.read_jsonl(tmp_path / "metrics.jsonl")
    scored = {r["language"]: r for r in rows if r["metric"] == metric}
    assert sorted(scored) == sorted(languages)
    for lang, row in scored.items():
        assert 0.0 <= row["value"] <= 100.0 and row["n_examples"] == 20 and row["task"] == task
        assert row["seen"] == (lang in ("en", "sw")), "seen = in the intermediate language set"
    trains = task != "tatoeba"
    assert (len(evaluated.log) == 3) == trains


def test_target_without_intermediate_is_the_baseline(tmp_path):
    cfg = C.from_dict(C.TargetConfig, dict(model_name_or_path="embedded:tiny-random", target_task="pawsx", max_steps=2,
                                           per_device_train_batch_size=8, max_train_examples=16,
                                           eval_languages=["en", "fr"], max_eval_examples=8))
    pipeline.target(cfg, str(tmp_path), "")
    rows = [r for r in io.read_jsonl(tmp_path / "metrics.jsonl") if r["split"] != "validation"]
    assert {r["language"] for r in rows} == {"en", "fr"} and not any(r["seen"] for r in rows)


def test_unfinished_intermediate_run_is_refused(tmp_path):
    cfg = C.from_dict(C.TargetConfig, dict(model_name_or_path="embedded:tiny-random", target_task="pawsx"))
    (tmp_path / "half").mkdir()
    with pytest.raises(RuntimeError, match="unfinished intermediate run"):
        pipeline.target(cfg, str(tmp_path / "t"), str(tmp_path / "half"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pipeline.target(cfg, str(tmp_path / "t"), str(tmp_path / "missing"))
