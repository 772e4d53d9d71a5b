"""Data-parallel training under torchrun: 2 CPU processes on gloo, a real tiny multi-task run.

Two ranks with per-device batch b and accumulation 1 take the draws 0, 2, 4, ... and 1, 3, 5, ...
of one seeded batch sequence; DDP averages their gradients. One process with batch b and
accumulation 2 sums the gradients of the same two micro-batches, each scaled by 1/2. Scaling by 2
is exact in floating point and a sum of two numbers does not depend on their order, so the two
runs compute the same bits: the test asserts equal losses and weights exactly (with dropout off:
dropout draws are per process and cannot match a single process's)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
ARGS = dict(learning_rate=3e-3, per_device_train_batch_size=8, max_steps=6, warmup_ratio=0.2, weight_decay=0.1,
            logging_steps=1, multitask_sampling="uniform", prune_vocabulary=True, checkpoint_every_steps=3, seed=7,
            eval_steps=2, early_stopping_patience=3)
EXTRA_VOCAB = 300


def build_model(vocab_size):
    from xfer_nb.models.heads import MultiTaskModel
    from xfer_nb.models.tiny import build_tiny_model
    from xfer_nb.tasks.schema import PAIR
    encoder = build_tiny_model(vocab_size + EXTRA_VOCAB, seed=1, hidden_size=32, intermediate_size=64,
                               hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    encoder.pooler = None
    return MultiTaskModel(encoder, {"xnli": (PAIR, 3), "pawsx": (PAIR, 2)}, dropout=0.0, seed=1)


def run_training(data: Path, out: Path, **overrides):
    import datasets
    from xfer_nb.featurize import collate
    from xfer_nb.train import TrainingArgs, train
    meta = json.loads((data / "meta.json").read_text())
    sets = {t: datasets.load_from_disk(str(data / t)) for t in ("xnli", "pawsx")}
    val = datasets.load_from_disk(str(data / "val"))
    batch = collate([{k: r[k] for k in ("input_ids", "attention_mask", "labels")} for r in val], meta["pad_token_id"])
    calls = []

    def evaluate_fn(model):   # minus the XNLI validation loss; under torchrun only rank 0 calls it
        calls.append(1)
        with torch.no_grad():
            return -float(model(task="xnli", **batch)["loss"])

    model = build_model(meta["vocab_size"])
    result = train(model, sets, TrainingArgs(**{**ARGS, **overrides}), out, collate_fn=collate,
                   pad_token_id=meta["pad_token_id"], resume=False, progress=False, evaluate_fn=evaluate_fn)
    result.calls = len(calls)
    return result, model


@pytest.fixture(scope="module")
def data(data_dir, tmp_path_factory):
    from xfer_nb import tasks
    from xfer_nb.featurize import featurize
    from xfer_nb.tasks.schema import PAIR
    from test_train import build_tokenizer, xnli_rows
    tok = build_tokenizer(data_dir)
    folder = tmp_path_factory.mktemp("ddp-data")
    featurize(xnli_rows(data_dir, 64), PAIR, tok, max_seq_length=64, cache_dir=False).save_to_disk(str(folder / "xnli"))
    featurize(tasks.load("pawsx", "en", "dev", data_dir=data_dir).select(range(48)), PAIR, tok, max_seq_length=64,
              cache_dir=False).save_to_disk(str(folder / "pawsx"))
    featurize(xnli_rows(data_dir, 48, offset=400), PAIR, tok, max_seq_length=64,
              cache_dir=False).save_to_disk(str(folder / "val"))
    (folder / "meta.json").write_text(json.dumps({"vocab_size": len(tok), "pad_token_id": tok.pad_token_id}))
    return folder


def test_two_gloo_ranks_equal_one_process_with_double_accumulation(data, tmp_path):
    from xfer_nb.launch import torchrun_command
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)])}
    cmd = torchrun_command(2, [str(data), str(out)], module="test_distributed")
    proc = subprocess.run(cmd, env=env, cwd=HERE, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]

    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    results = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    # every rank ends with the same weights (full vocabulary restored), and the same result
    assert ranks[0].keys() == ranks[1].keys() and all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])
    assert ranks[0]["encoder.embeddings.word_embeddings.weight"].shape[0] > EXTRA_VOCAB
    assert {k: v for k, v in results[0].items() if k != "calls"} == {k: v for k, v in results[1].items() if k != "calls"}
    assert results[0]["calls"] == len(results[0]["log_history"]) - 6 > 0 and results[1]["calls"] == 0  # rank 0 scores
    ddp = results[0]
    assert ddp["world_size"] == 2 and ddp["global_step"] == 6
    assert ddp["examples_seen"] == 6 * 2 * 8 and sum(ddp["task_counts"].values()) == 12
    # rank 0 alone wrote the checkpoint; it records both ranks' RNG states
    state = torch.load(out / "checkpoints" / "step-6" / "state.pt", weights_only=False)
    assert len(state["rng_per_rank"]) == 2
    assert json.loads((out / "checkpoints" / "step-6" / "trainer_state.json").read_text())["signature"]["world_size"] == 2

    single, model = run_training(data, tmp_path / "single", gradient_accumulation_steps=2)
    assert single.world_size == 1 and single.examples_seen == ddp["examples_seen"]
    assert single.task_counts == ddp["task_counts"] and single.tokens_seen == ddp["tokens_seen"]
    assert single.padded_tokens_seen == ddp["padded_tokens_seen"]
    assert [e["loss"] for e in single.loss_history] == [e["loss"] for e in ddp["log_history"] if "loss" in e]  # exactly
    assert single.log_history == ddp["log_history"]          # validation scores (broadcast from rank 0) too
    assert (single.best_step, single.best_score, single.stopped_early) == \
           (ddp["best_step"], ddp["best_score"], ddp["stopped_early"])
    sd = model.state_dict()
    assert sd.keys() == ranks[0].keys()
    assert max((sd[k] - ranks[0][k]).abs().max().item() for k in sd if sd[k].dtype.is_floating_point) == 0.0
    # and it is not a run of batch 8 without accumulation
    half, _ = run_training(data, tmp_path / "half")
    assert [e["loss"] for e in half.loss_history] != [e["loss"] for e in single.loss_history]


def test_run_stage_from_a_run_folder_config(tmp_path, monkeypatch):
    """The launcher's entry (here one process; each torchrun rank runs the same): the intermediate
    stage from the config.json the sweep writes, multi-task, with early stopping on held-out
    prepared rows scored with real accuracy; a rank other than 0 returns None and writes nothing."""
    from xfer_nb import config as C
    from xfer_nb import distributed, io, launch, pipeline
    prep_cfg = C.from_dict(C.PrepareConfig, dict(intermediate_task="xnli+pawsx", intermediate_size=40,
                                                 language_set="en+de", intermediate_languages=["en", "de"], seed=3,
                                                 held_out_examples=8))
    pipeline.prepare(prep_cfg, str(tmp_path / "prepare"))
    values = dict(model_name_or_path="embedded:tiny-random", max_steps=6, per_device_train_batch_size=4,
                  learning_rate=5e-3, max_seq_length=64, logging_steps=1, seed=3, eval_steps=2,
                  validation_examples=8, early_stopping_patience=1)
    stage = tmp_path / "intermediate"
    io.write_json(stage / "config.json", {"stage": "intermediate", "config": values, "upstream": {},
                                          "upstream_dirs": {"prepare": str(tmp_path / "prepare")}})
    trained = launch.run_stage("intermediate", stage / "config.json", str(stage), mark_done=True)
    s = trained.summary
    assert s["train_examples"] == {"pawsx": 40, "xnli": 40}      # the prepared subsets; 8 more held out per task
    assert s["validation"].startswith("per task, 8 pawsx, 8 xnli rows held out of the pool")
    log = io.read_jsonl(stage / "train_log.jsonl")
    scores = [e["validation_score"] for e in log if "validation_score" in e]
    # the mean of two accuracies over 8 pairs each: a multiple of 100 / 16
    assert scores and all(abs(v * 16 / 100 - round(v * 16 / 100)) < 1e-9 for v in scores)
    assert s["best_validation_score"] == round(max(scores), 4)
    assert s["stopped_early"] == (s["steps"] < 6) and "validation_score" not in trained.log
    assert (stage / "encoder" / "model.safetensors").is_file()
    assert json.loads((stage / "DONE.json").read_text())["world_size"] == 1
    with pytest.raises(ValueError, match="config of a 'intermediate' run"):
        launch.run_stage("target", stage / "config.json", str(tmp_path / "t"))

    monkeypatch.setattr(distributed, "is_main_process", lambda: False)
    cfg = C.from_dict(C.IntermediateConfig, {**values, "max_steps": 1, "eval_steps": 0, "early_stopping_patience": 0})
    assert pipeline.intermediate(cfg, str(tmp_path / "rank1"), str(tmp_path / "prepare")) is None
    assert not (tmp_path / "rank1" / "encoder").exists() and not (tmp_path / "rank1" / "train_log.jsonl").exists()


def test_torchrun_command():
    from xfer_nb.launch import torchrun_command
    cmd = torchrun_command(4, ["target", "c.json", "runs/t", ""])
    assert cmd[:7] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "4", "-m"]
    assert cmd[7:] == ["xfer_nb.launch", "target", "c.json", "runs/t", ""]
    with pytest.raises(ValueError, match="nproc=0"):
        torchrun_command(0, [])


if __name__ == "__main__":   # each torchrun rank of the test above
    import torch.distributed as dist
    from xfer_nb import distributed
    data_arg, out_arg = Path(sys.argv[1]), Path(sys.argv[2])
    res, trained = run_training(data_arg, out_arg)
    rank = dist.get_rank()
    torch.save(trained.state_dict(), out_arg / f"rank{rank}.pt")
    summary = {**res.to_dict(), "calls": res.calls}
    for key in ("train_seconds", "examples_per_second", "tokens_per_second", "eval_seconds"):
        summary.pop(key)
    (out_arg / f"rank{rank}.json").write_text(json.dumps(summary))
    distributed.cleanup()
