"""Validation scores and early stopping in xfer_nb.train (real tiny training on XNLI English pairs),
their exact resumption, and the pipeline's validation data (held-out or English dev) with real metrics."""
import numpy as np
import pytest
import torch

from xfer_nb.featurize import collate, featurize
from xfer_nb.tasks.schema import PAIR
from xfer_nb.train import TrainingArgs, train, word_embeddings

from test_train import tiny_model, xnli_rows

# An over-fitting setup: 32 training pairs, a large learning rate, validation loss on 64 other pairs.
ARGS = dict(learning_rate=4e-3, per_device_train_batch_size=8, max_steps=24, warmup_ratio=0.0, logging_steps=1,
            seed=0, eval_steps=2)


@pytest.fixture(scope="module")
def sets(data_dir, tok):
    train_rows = featurize(xnli_rows(data_dir, 32), PAIR, tok, max_seq_length=64, cache_dir=False)
    val_rows = featurize(xnli_rows(data_dir, 64, offset=300), PAIR, tok, max_seq_length=64, cache_dir=False)
    return train_rows, val_rows


@pytest.fixture(scope="module")
def tok(data_dir):
    from test_train import build_tokenizer
    return build_tokenizer(data_dir)


def neg_val_loss(val_rows, pad_id, calls=None):
    """evaluate_fn: minus the mean cross-entropy on the validation pairs (higher is better)."""
    batch = collate([{k: r[k] for k in ("input_ids", "attention_mask", "labels")} for r in val_rows], pad_id)

    def score(model):
        if calls is not None:
            calls.append({"training": model.training,
                          "state": {k: v.detach().clone() for k, v in model.state_dict().items()}})
        with torch.no_grad():
            return -float(model(**batch)["loss"])
    return score


def fit(model, train_rows, out, tok, evaluate_fn=None, collate_fn=collate, resume=False, **kw):
    return train(model, {"xnli": train_rows}, TrainingArgs(**{**ARGS, **kw}), out, collate_fn=collate_fn,
                 pad_token_id=tok.pad_token_id, resume=resume, progress=False, evaluate_fn=evaluate_fn)


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_scores_every_eval_steps_in_eval_mode_without_changing_training(sets, tok, tmp_path):
    train_rows, val_rows = sets
    calls = []
    scored, plain = tiny_model(len(tok)), tiny_model(len(tok))
    rs = fit(scored, train_rows, tmp_path / "s", tok, neg_val_loss(val_rows, tok.pad_token_id, calls), max_steps=7,
             eval_steps=3)
    rp = fit(plain, train_rows, tmp_path / "p", tok, None, max_steps=7, eval_steps=3)
    # scored at steps 3, 6 and after the last step (7), in eval mode; back in train mode afterwards
    assert [e["step"] for e in rs.validation_history] == [3, 6, 7]
    assert [c["training"] for c in calls] == [False] * 3 and scored.training
    assert rs.loss_history == rp.log_history                       # scoring changed nothing in training
    assert same_weights(scored, plain)                             # (RNG states put back around each score)
    scores = [e["validation_score"] for e in rs.validation_history]
    assert rs.best_score == max(scores) and rs.best_step == [3, 6, 7][int(np.argmax(scores))]
    assert not rs.stopped_early and rs.global_step == 7 and rp.best_step is None
    assert rs.eval_seconds > 0 and rs.device == "cpu"
    # patience 0: the final weights are kept (scored at the last step)
    assert all(torch.equal(v, calls[-1]["state"][k]) for k, v in scored.state_dict().items())


def test_early_stopping_stops_and_restores_the_best_weights(sets, tok, tmp_path):
    train_rows, val_rows = sets
    calls = []
    model = tiny_model(len(tok))
    evaluate_fn = neg_val_loss(val_rows, tok.pad_token_id, calls)
    res = fit(model, train_rows, tmp_path, tok, evaluate_fn, early_stopping_patience=2)
    history = res.validation_history
    scores = [e["validation_score"] for e in history]
    best = int(np.argmax(scores))
    # the validation loss rises as 32 pairs are memorised: stopped 2 scores after the best, before step 24
    assert res.stopped_early and res.global_step < 24, scores
    assert len(history) == best + 3 and res.global_step == history[-1]["step"] == res.best_step + 4
    assert all(s <= scores[best] for s in scores[best + 1:])
    assert res.loss_history[-1]["step"] == res.global_step
    # the weights are those scored best, and score the same again
    assert all(torch.equal(v, calls[best]["state"][k]) for k, v in model.state_dict().items())
    assert model.training                                        # handed back in train mode
    assert evaluate_fn(model.eval()) == res.best_score


def test_early_stopping_with_pruned_vocabulary_restores_the_decay_of_the_best_step(sets, tok, tmp_path):
    """Unused rows get the closed-form decay up to the best step, not the stopping step."""
    train_rows, val_rows = sets
    kw = dict(early_stopping_patience=2, weight_decay=0.1)
    full, pruned = tiny_model(len(tok), extra_vocab=500), tiny_model(len(tok), extra_vocab=500)
    original = word_embeddings(full).weight.detach().clone()
    fn = neg_val_loss(val_rows, tok.pad_token_id)
    rf = fit(full, train_rows, tmp_path / "f", tok, fn, **kw)
    rp = fit(pruned, train_rows, tmp_path / "p", tok, fn, prune_vocabulary=True, **kw)
    assert rf.stopped_early and rp.best_step == rf.best_step and rp.global_step == rf.global_step
    wf, wp = word_embeddings(full).weight, word_embeddings(pruned).weight
    assert wp.shape == wf.shape == original.shape
    assert torch.allclose(wf, wp, atol=1e-6, rtol=1e-5)
    unused = original.shape[0] - 1
    assert not torch.equal(wp[unused], original[unused])
    decay = np.prod([1 - e["learning_rate"] * 0.1 for e in rf.loss_history if e["step"] <= rf.best_step])
    assert torch.allclose(wp[unused], original[unused] * float(decay), atol=1e-7, rtol=1e-5)


class Interrupt(Exception):
    pass


def test_interrupted_run_resumes_to_the_same_stop_and_weights(sets, tok, tmp_path):
    """Killed after the checkpoint that first holds best_model.pt (best step < checkpoint step):
    the resumed run has the same scores, stops at the same step, with bit-identical weights."""
    train_rows, val_rows = sets
    kw = dict(early_stopping_patience=2, checkpoint_every_steps=2, save_total_limit=2)
    fn = neg_val_loss(val_rows, tok.pad_token_id)
    full_model = tiny_model(len(tok))
    full = fit(full_model, train_rows, tmp_path / "full", tok, fn, **kw)
    assert full.stopped_early
    crash_after = full.best_step + 2            # the checkpoint there holds the best weights of an earlier step
    count = {"n": 0}

    def crashing_collate(rows, pad):
        count["n"] += 1
        if count["n"] > crash_after:
            raise Interrupt
        return collate(rows, pad)

    out = tmp_path / "cut"
    with pytest.raises(Interrupt):
        fit(tiny_model(len(tok)), train_rows, out, tok, fn, collate_fn=crashing_collate, **kw)
    assert (out / "checkpoints" / f"step-{crash_after}" / "best_model.pt").is_file()
    model = tiny_model(len(tok))
    resumed = fit(model, train_rows, out, tok, fn, resume=True, **kw)
    assert resumed.resumed_from_step == crash_after
    assert resumed.log_history == full.log_history               # losses and scores, bit for bit
    assert (resumed.global_step, resumed.best_step, resumed.best_score, resumed.stopped_early) == \
           (full.global_step, full.best_step, full.best_score, True)
    assert same_weights(model, full_model)
    # resuming the finished run returns the same best weights
    again_model = tiny_model(len(tok))
    again = fit(again_model, train_rows, out, tok, fn, resume=True, **kw)
    assert again.resumed_from_step == full.global_step and again.stopped_early
    assert same_weights(again_model, full_model)


def test_patience_without_evaluate_fn_is_refused(sets, tok, tmp_path):
    model = tiny_model(len(tok))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="early_stopping_patience=2 needs an evaluate_fn"):
        fit(model, sets[0], tmp_path, tok, None, early_stopping_patience=2)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


# ----------------------------------------------------------------------------- the pipeline's validation data

def test_hold_out_is_seeded_disjoint_and_keeps_order(data_dir):
    from xfer_nb import pipeline, tasks
    ds = tasks.load("pawsx", "en", "dev", data_dir=data_dir).select(range(100))
    rest, held = pipeline.hold_out(ds, 20, seed=4, what="pawsx")
    rest2, held2 = pipeline.hold_out(ds, 20, seed=4, what="pawsx")
    assert len(rest) == 80 and len(held) == 20 and held["id"] == held2["id"]
    assert not set(rest["id"]) & set(held["id"]) and set(rest["id"]) | set(held["id"]) == set(ds["id"])
    position = {i: k for k, i in enumerate(ds["id"])}
    assert [position[i] for i in rest["id"]] == sorted(position[i] for i in rest["id"])
    assert held["id"] != pipeline.hold_out(ds, 20, seed=5, what="pawsx")[1]["id"]
    with pytest.raises(ValueError, match="validation_examples=100 leaves no training data"):
        pipeline.hold_out(ds, 100, seed=0, what="pawsx")


@pytest.mark.parametrize("task, source, expected", [
    ("xnli", "local", ("xnli", "en", "dev")), ("udpos", "local", ("udpos", "en", "dev")),
    ("panx", "local", ("panx", "en", "dev")), ("pawsx", "local", None), ("tydiqa", "local", None),
    ("xquad", "local", None), ("pawsx", "hub", ("pawsx", "en", "dev")),
])
def test_validation_split_is_english_dev_unless_it_is_the_training_data(task, source, expected):
    from xfer_nb import config as C
    from xfer_nb import pipeline, tasks
    cfg = C.from_dict(C.TargetConfig, dict(target_task=task, data_source=source))
    assert pipeline.validation_split(cfg, tasks.target_training(task, source)) == expected


def test_target_stage_with_early_stopping_on_held_out_pawsx(tmp_path):
    """PAWS-X's only English data is its training split: validation pairs are held out of it and
    scored with real accuracy through predict + evaluate.compute."""
    from xfer_nb import config as C
    from xfer_nb import io, pipeline
    cfg = C.from_dict(C.TargetConfig, dict(model_name_or_path="embedded:tiny-random", target_task="pawsx",
                                           max_steps=6, per_device_train_batch_size=8, learning_rate=1e-3,
                                           max_seq_length=64, max_train_examples=48, eval_languages=["en"],
                                           max_eval_examples=8, logging_steps=1, seed=3, eval_steps=2,
                                           early_stopping_patience=1, validation_examples=24))
    evaluated = pipeline.target(cfg, str(tmp_path), "")
    s = evaluated.summary
    assert s["validation"].startswith("held out: the last 24 rows of a seed-3 permutation of pawsx en dev")
    log = io.read_jsonl(tmp_path / "train_log.jsonl")
    scores = [e for e in log if "validation_score" in e]
    assert scores and all(0.0 <= e["validation_score"] <= 100.0 for e in scores)
    assert all(round(e["validation_score"] * 24 / 100, 6) == round(e["validation_score"] * 24 / 100)
               for e in scores)                                        # accuracies over 24 pairs
    assert s["best_validation_score"] == round(max(e["validation_score"] for e in scores), 4)
    assert s["steps"] == scores[-1]["step"] and (s["stopped_early"] == (s["steps"] < 6))
    assert list(evaluated.log.columns[:2]) == ["step", "loss"] and "validation_score" not in evaluated.log
    assert {r["language"] for r in io.read_jsonl(tmp_path / "metrics.jsonl")} == {"en"}
