"""xfer_nb.train on real XNLI English pairs with a tiny random XLM-R encoder: real steps."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from xfer_nb.featurize import collate, featurize
from xfer_nb.models.heads import MultiTaskModel, TaskModel
from xfer_nb.tasks.schema import PAIR
from xfer_nb.devices import bf16_supported, default_precision
from xfer_nb.train import MultiTaskSampler, BatchSampler, TrainingArgs, task_probabilities, train, word_embeddings


# ----------------------------------------------------------------------------- fixtures (shared with test_resume)

def xnli_rows(data_dir, n, offset=0):
    """XNLI English dev pairs, read through xfer_nb.tasks (the project's loader)."""
    from xfer_nb import tasks
    ds = tasks.load("xnli", "en", "dev", data_dir=data_dir)
    return ds.select(range(offset, offset + n))


def build_tokenizer(data_dir, n_words=400):
    """xfer_nb.models.tiny's XLM-R-layout tokenizer (<s>=0 <pad>=1 </s>=2 <unk>=3), deterministic,
    with the most frequent words of 600 XNLI English pairs as extra pieces."""
    import collections
    import re
    from xfer_nb.models.tiny import build_tiny_tokenizer
    rows = xnli_rows(data_dir, 600)
    counts = collections.Counter(w for text in list(rows["sentence1"]) + list(rows["sentence2"])
                                 for w in re.findall(r"\w+", text))
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:n_words]
    return build_tiny_tokenizer(extra_words=words)


def tiny_encoder(vocab_size, seed=0, hidden=32):
    """xfer_nb.models.tiny's random XLM-R encoder, without its pooler (TaskModel reads
    last_hidden_state, so a pooler would get no gradient)."""
    from xfer_nb.models.tiny import build_tiny_model
    model = build_tiny_model(vocab_size, seed=seed, hidden_size=hidden, intermediate_size=2 * hidden)
    model.pooler = None
    return model


def tiny_model(vocab_size, seed=0, extra_vocab=0):
    return TaskModel(tiny_encoder(vocab_size + extra_vocab, seed), PAIR, 3, seed=seed)


@pytest.fixture(scope="module")
def tok(data_dir):
    return build_tokenizer(data_dir)


@pytest.fixture(scope="module")
def xnli(data_dir, tok):
    return featurize(xnli_rows(data_dir, 256), PAIR, tok, max_seq_length=64, cache_dir=False)


def run(model, sets, tmp_path, tok, **kw):
    kw = {"learning_rate": 1e-3, "per_device_train_batch_size": 16, "max_steps": 12, "logging_steps": 1,
          "warmup_ratio": 0.1, "seed": 0, **kw}
    return train(model, sets, TrainingArgs(**kw), tmp_path, collate_fn=collate, pad_token_id=tok.pad_token_id,
                 resume=False, progress=False)


def losses(result):
    return [e["loss"] for e in result.log_history]


# ----------------------------------------------------------------------------- training

def test_loss_decreases_on_real_xnli_pairs(tok, xnli, tmp_path):
    small = xnli.select(range(64))
    model = tiny_model(len(tok))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = collate([{k: r[k] for k in ("input_ids", "attention_mask", "labels")} for r in small], tok.pad_token_id)

    def eval_loss():
        model.eval()
        with torch.no_grad():
            return model(**batch)["loss"].item()

    start = eval_loss()
    res = run(model, {"xnli": small}, tmp_path, tok, max_steps=80, learning_rate=3e-3, warmup_ratio=0.0)
    ls = losses(res)
    assert res.global_step == 80 and len(ls) == 80
    assert res.examples_seen == 80 * 16
    assert np.mean(ls[-5:]) < np.mean(ls[:5]) - 0.2, ls          # memorises 64 real pairs
    assert eval_loss() < start - 0.2
    assert res.tokens_per_second > 0 and res.tokens_seen < res.padded_tokens_seen
    # the schedule: linear decay to 0 at the last step; epochs = micro-batches / ceil(64 / 16)
    lrs = [e["learning_rate"] for e in res.log_history]
    assert lrs[0] == pytest.approx(3e-3) and lrs[-1] == pytest.approx(3e-3 / 80)
    assert res.log_history[-1]["epoch"] == pytest.approx(20.0)
    assert all(not torch.equal(before[k], v) for k, v in model.state_dict().items() if v.dtype.is_floating_point
               and "position_ids" not in k and "token_type" not in k)


def test_length_grouping_pads_less_and_covers_every_row(tok, xnli, tmp_path):
    lengths = list(xnli["length"])
    s = BatchSampler(lengths, 16, seed=3, group_by_length=True)
    epoch = [s.next() for _ in range(len(s))]
    assert sorted(np.concatenate(epoch).tolist()) == list(range(len(lengths)))   # each row once per epoch
    r = BatchSampler(lengths, 16, seed=3, group_by_length=False)
    rand = [r.next() for _ in range(len(r))]
    padded = lambda bs: sum(len(b) * max(lengths[i] for i in b) for b in bs)  # noqa: E731
    assert padded(epoch) < 0.8 * padded(rand)
    # real training: fewer padded tokens for the same real tokens
    g = run(tiny_model(len(tok)), {"xnli": xnli}, tmp_path / "g", tok, max_steps=16, group_by_length=True)
    u = run(tiny_model(len(tok)), {"xnli": xnli}, tmp_path / "u", tok, max_steps=16, group_by_length=False)
    assert g.tokens_seen == u.tokens_seen == sum(lengths)
    assert g.padded_tokens_seen < 0.8 * u.padded_tokens_seen


def test_same_seed_bit_identical_other_seed_differs(tok, xnli, tmp_path):
    kw = {"max_steps": 8, "gradient_accumulation_steps": 2}
    a, b, c = tiny_model(len(tok)), tiny_model(len(tok)), tiny_model(len(tok))
    ra = run(a, {"xnli": xnli}, tmp_path / "a", tok, seed=1, **kw)
    rb = run(b, {"xnli": xnli}, tmp_path / "b", tok, seed=1, **kw)
    rc = run(c, {"xnli": xnli}, tmp_path / "c", tok, seed=2, **kw)
    assert losses(ra) == losses(rb)                       # exactly, not approximately
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert losses(ra) != losses(rc)
    assert ra.examples_seen == 8 * 2 * 16


def test_prune_vocabulary_is_exact(tok, xnli, tmp_path):
    """Pruned training = full-vocabulary training: same losses, same final full matrix (unused rows
    get their closed-form weight decay)."""
    extra = 3000   # unused rows, as a large vocabulary has
    kw = {"max_steps": 10, "weight_decay": 0.1, "learning_rate": 2e-3}
    full, pruned = tiny_model(len(tok), extra_vocab=extra), tiny_model(len(tok), extra_vocab=extra)
    original = word_embeddings(full).weight.detach().clone()
    rf = run(full, {"xnli": xnli}, tmp_path / "f", tok, **kw)
    rp = run(pruned, {"xnli": xnli}, tmp_path / "p", tok, prune_vocabulary=True, **kw)
    assert rp.vocab_rows_trained < len(tok) < len(tok) + extra
    assert max(abs(x - y) for x, y in zip(losses(rf), losses(rp))) < 1e-5
    wf, wp = word_embeddings(full).weight, word_embeddings(pruned).weight
    assert wp.shape == wf.shape == original.shape and wp.requires_grad
    assert torch.allclose(wf, wp, atol=1e-6, rtol=1e-5)
    unused = original.shape[0] - 1                        # a row no XNLI token uses: only decayed
    assert not torch.equal(wf[unused], original[unused])
    assert torch.allclose(wp[unused], wf[unused], atol=1e-7, rtol=1e-6)
    sf, sp = full.state_dict(), pruned.state_dict()
    assert max((sf[k] - sp[k]).abs().max().item() for k in sf if sf[k].dtype.is_floating_point) < 1e-5


def test_freeze_word_embeddings(tok, xnli, tmp_path):
    model = tiny_model(len(tok))
    emb = word_embeddings(model).weight.detach().clone()
    layer = model.encoder.encoder.layer[0].attention.self.query.weight.detach().clone()
    run(model, {"xnli": xnli}, tmp_path, tok, max_steps=4, freeze_word_embeddings=True)
    assert torch.equal(word_embeddings(model).weight, emb)
    assert word_embeddings(model).weight.requires_grad           # restored afterwards
    assert not torch.equal(model.encoder.encoder.layer[0].attention.self.query.weight, layer)


# ----------------------------------------------------------------------------- multi-task sampling

def test_task_probabilities_exact():
    sizes = {"a": 100, "b": 400, "c": 10_000}
    p = task_probabilities(sizes, "proportional")
    assert p["c"] == pytest.approx(10_000 / 10_500)
    p = task_probabilities(sizes, "proportional", cap=1000)            # jiant/T5 cap K
    assert p == pytest.approx({"a": 100 / 1500, "b": 400 / 1500, "c": 1000 / 1500})
    p = task_probabilities(sizes, "uniform", cap=1000)
    assert p == pytest.approx({t: 1 / 3 for t in sizes})
    p = task_probabilities(sizes, "temperature", temperature=2.0, cap=1000)
    w = {"a": 10.0, "b": 20.0, "c": math.sqrt(1000)}
    assert p == pytest.approx({t: v / sum(w.values()) for t, v in w.items()})


@pytest.mark.parametrize("scheme,temperature,cap", [("proportional", 2.0, None), ("uniform", 2.0, None),
                                                    ("temperature", 3.0, 600), ("proportional", 1.0, 600)])
def test_task_draws_follow_the_scheme(scheme, temperature, cap):
    lengths = {"a": [10] * 100, "b": [10] * 400, "c": [10] * 2000}
    s = MultiTaskSampler(lengths, 8, seed=0, scheme=scheme, temperature=temperature, cap=cap)
    n = 20_000
    counts = {t: 0 for t in lengths}
    for _ in range(n):
        counts[s.draw_task()] += 1
    expected = task_probabilities({t: len(v) for t, v in lengths.items()}, scheme, temperature, cap)
    for t, p in expected.items():
        assert abs(counts[t] / n - p) < 4 * math.sqrt(p * (1 - p) / n), (t, counts, expected)


def test_multitask_training_passes_task_and_counts_draws(data_dir, tok, xnli, tmp_path):
    from xfer_nb import tasks
    pawsx = featurize(tasks.load("pawsx", "en", "dev", data_dir=data_dir).select(range(64)), PAIR, tok,
                      max_seq_length=64, cache_dir=False)
    model = MultiTaskModel(tiny_encoder(len(tok)), {"xnli": (PAIR, 3), "pawsx": (PAIR, 2)}, seed=0)
    seen = []
    forward = model.forward
    model.forward = lambda task, **b: (seen.append((task, b["labels"].max().item())), forward(task=task, **b))[1]
    res = run(model, {"xnli": xnli, "pawsx": pawsx}, tmp_path, tok, max_steps=30, multitask_sampling="uniform")
    assert sum(res.task_counts.values()) == 30 and len(seen) == 30
    assert min(res.task_counts.values()) >= 5
    assert all(lab <= (2 if t == "xnli" else 1) for t, lab in seen)   # each task's batch went to its head
    # one epoch = ceil(256 / 16) + ceil(64 / 16) micro-batches
    assert res.log_history[-1]["epoch"] == pytest.approx(30 / 20)


# ----------------------------------------------------------------------------- bad arguments, progress

@pytest.mark.parametrize("field,value,needle", [
    ("learning_rate", 0.0, "> 0"), ("learning_rate", -1e-5, "> 0"), ("per_device_train_batch_size", 0, ">= 1"),
    ("precision", "fp8", "'fp32', 'bf16', 'fp16'"), ("multitask_sampling", "square", "'temperature'"),
    ("multitask_temperature", 0.0, "> 0"), ("multitask_cap", 0, "None"), ("max_steps", 0, "-1"),
    ("gradient_accumulation_steps", 0, ">= 1"), ("warmup_ratio", 1.0, "[0, 1)"),
])
def test_bad_args_fail_naming_field_value_and_allowed(field, value, needle):
    with pytest.raises(ValueError) as err:
        TrainingArgs(**{field: value})
    assert f"{field}={value!r}" in str(err.value) and needle in str(err.value)


def test_bad_precision_for_the_device_fails_before_training(tok, xnli, tmp_path):
    model = tiny_model(len(tok))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        run(model, {"xnli": xnli}, tmp_path, tok, precision="fp16", checkpoint_every_steps=1)
    if not bf16_supported():
        with pytest.raises(RuntimeError, match="native bf16"):
            run(model, {"xnli": xnli}, tmp_path, tok, precision="bf16", checkpoint_every_steps=1)
    with pytest.raises(ValueError, match="train_sets is empty"):
        run(model, {}, tmp_path, tok)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.skipif(not bf16_supported(), reason="this CPU has no native bf16")
def test_bf16_autocast_trains(tok, xnli, tmp_path):
    res = run(tiny_model(len(tok)), {"xnli": xnli}, tmp_path, tok, precision="bf16", max_steps=4)
    assert all(math.isfinite(x) for x in losses(res))
    assert res.precision == "bf16"


def test_auto_precision_resolves_per_device_and_is_recorded(tok, xnli, tmp_path):
    # auto is bf16 exactly where this CPU has native bf16 (never the slow emulation), else fp32;
    # the result says which one trained, and it matches an explicit run of that precision.
    expected = "bf16" if bf16_supported() else "fp32"
    assert default_precision("cpu") == expected
    auto = run(tiny_model(len(tok)), {"xnli": xnli}, tmp_path / "auto", tok, precision="auto", max_steps=3)
    explicit = run(tiny_model(len(tok)), {"xnli": xnli}, tmp_path / "explicit", tok, precision=expected, max_steps=3)
    assert auto.precision == expected and explicit.precision == expected
    assert losses(auto) == losses(explicit)


def test_progress_lines_without_a_terminal(tok, xnli, tmp_path, capsys):
    args = TrainingArgs(learning_rate=1e-3, per_device_train_batch_size=16, max_steps=6, logging_steps=3)
    train(tiny_model(len(tok)), {"xnli": xnli}, args, tmp_path / "a", collate_fn=collate, pad_token_id=1)
    out = capsys.readouterr()
    lines = [ln for ln in out.out.splitlines() if ln.startswith("step ")]
    assert len(lines) == 2 and lines[0].startswith("step 3/6") and "ex/s" in lines[1]
    assert "\r" not in out.err + out.out                       # no progress-bar redraws in saved outputs
    train(tiny_model(len(tok)), {"xnli": xnli}, args, tmp_path / "b", collate_fn=collate, pad_token_id=1,
          progress=False)
    assert capsys.readouterr().out == ""


def test_training_args_are_documented():
    for f in dataclasses.fields(TrainingArgs):
        assert f.metadata.get("help"), f.name


# ----------------------------------------------------------------------------- device

def test_device_auto_and_cuda_without_cuda(tok, xnli, tmp_path):
    model = tiny_model(len(tok))
    res = run(model, {"xnli": xnli}, tmp_path / "a", tok, max_steps=2, device="auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert res.device.startswith(expected) and next(model.parameters()).device.type == expected
    with pytest.raises(ValueError, match="device='gpu' is not allowed"):
        TrainingArgs(device="gpu")
    if torch.cuda.is_available():
        return
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="device='cuda' but torch.cuda.is_available\\(\\) is False"):
        run(model, {"xnli": xnli}, tmp_path / "c", tok, device="cuda", checkpoint_every_steps=1)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert not (tmp_path / "c").exists()
