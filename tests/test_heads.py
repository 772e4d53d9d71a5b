"""Task heads on a tiny randomly initialised XLM-R encoder; the encoder hand-over between phases."""
import json

import pytest
import torch
from safetensors.torch import load_file
from torch.nn import functional as F

from xfer_nb.featurize import collate, featurize
from xfer_nb.models.heads import MultiTaskModel, TaskModel, build_task_model, save_encoder
from xfer_nb.tasks.schema import MULTIPLE_CHOICE, PAIR, QA, TAGGING, make_dataset

from test_featurize import build_tokenizer, panx_rows, pawsx_rows, siqa_rows, xquad_rows


def tiny_encoder(vocab_size, seed=0):
    from transformers import XLMRobertaConfig, XLMRobertaModel
    torch.manual_seed(seed)
    config = XLMRobertaConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=64, max_position_embeddings=160, pad_token_id=1, bos_token_id=0,
                              eos_token_id=2)
    return XLMRobertaModel(config, add_pooling_layer=False)


@pytest.fixture(scope="module")
def tok(data_dir):
    return build_tokenizer(data_dir)


@pytest.fixture(scope="module")
def batches(data_dir, tok):
    panx, names = panx_rows(data_dir, 6)
    out = {
        PAIR: featurize(make_dataset(PAIR, pawsx_rows(data_dir, 6)), PAIR, tok, cache_dir=False),
        TAGGING: featurize(make_dataset(TAGGING, panx), TAGGING, tok, cache_dir=False),
        QA: featurize(make_dataset(QA, xquad_rows(data_dir, 2)), QA, tok, max_seq_length=96, doc_stride=16,
                      max_query_length=20, cache_dir=False),
        MULTIPLE_CHOICE: featurize(make_dataset(MULTIPLE_CHOICE, siqa_rows(data_dir, 5)), MULTIPLE_CHOICE, tok,
                                   cache_dir=False),
    }
    return {fam: collate(list(ds)[:6], tok.pad_token_id) for fam, ds in out.items()}


@pytest.mark.parametrize("family,num_labels", [(PAIR, 2), (TAGGING, 7), (QA, 2), (MULTIPLE_CHOICE, 3)])
def test_forward_shapes_loss_and_gradients(tok, batches, family, num_labels):
    model = TaskModel(tiny_encoder(len(tok)), family, num_labels, dropout=0.1, seed=1)
    batch = batches[family]
    out = model(**batch)
    b = batch["input_ids"].shape[0]
    if family == PAIR:
        assert out["logits"].shape == (b, 2)
    elif family == TAGGING:
        assert out["logits"].shape == (*batch["input_ids"].shape, 7)
    elif family == QA:
        assert out["start_logits"].shape == out["end_logits"].shape == batch["input_ids"].shape
    else:
        assert out["logits"].shape == (b, 3) and batch["input_ids"].shape[:2] == (b, 3)
    assert torch.isfinite(out["loss"]) and out["loss"] > 0
    out["loss"].backward()
    assert model.encoder.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.head.parameters())
    # without targets: no loss
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "start_positions", "end_positions")}
    assert "loss" not in model(**inputs)


def test_losses_are_the_standard_ones(tok, batches):
    enc = tiny_encoder(len(tok))
    # tagging: cross-entropy over labelled first sub-tokens only
    tag = TaskModel(enc, TAGGING, 7, dropout=0.0).eval()
    b = batches[TAGGING]
    out = tag(**b)
    keep = b["labels"] != -100
    assert keep.sum() < b["attention_mask"].sum()   # non-first pieces and specials are ignored
    manual = F.cross_entropy(out["logits"][keep], b["labels"][keep])
    assert torch.allclose(out["loss"], manual, atol=1e-6)
    # pair: RobertaClassificationHead on the <s> vector
    pair = TaskModel(enc, PAIR, 3, dropout=0.0).eval()
    b = batches[PAIR]
    hidden = enc(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
    h = pair.head
    manual = h.out_proj(torch.tanh(h.dense(hidden[:, 0])))
    assert torch.allclose(pair(**b)["logits"], manual, atol=1e-5)
    # pooling="mean": the same head on the mean of the real tokens' vectors (padding ignored)
    mean = TaskModel(enc, PAIR, 3, dropout=0.0, pooling="mean").eval()
    mask = b["attention_mask"].unsqueeze(-1).float()
    assert (mask == 0).any()   # the batch has padding, so a plain mean would differ
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    manual = mean.head.out_proj(torch.tanh(mean.head.dense(pooled)))
    assert torch.allclose(mean(**b)["logits"], manual, atol=1e-5)
    assert not torch.allclose(manual, mean.head.out_proj(torch.tanh(mean.head.dense(hidden.mean(1)))), atol=1e-5)
    with pytest.raises(ValueError, match=r"pooling='max' is not allowed"):
        TaskModel(enc, PAIR, 3, pooling="max")
    # QA: mean of start and end cross-entropies
    qa = TaskModel(enc, QA, 2, dropout=0.0).eval()
    b = batches[QA]
    out = qa(**b)
    manual = (F.cross_entropy(out["start_logits"], b["start_positions"])
              + F.cross_entropy(out["end_logits"], b["end_positions"])) / 2
    assert torch.allclose(out["loss"], manual, atol=1e-6)
    # multiple choice: one score per choice from its <s> vector, softmax over choices
    mc = TaskModel(enc, MULTIPLE_CHOICE, 3, dropout=0.0).eval()
    b = batches[MULTIPLE_CHOICE]
    out = mc(**b)
    one = {k: v[:, 1] for k, v in b.items() if k in ("input_ids", "attention_mask")}
    hidden = enc(**one).last_hidden_state
    score1 = mc.head.out_proj(torch.tanh(mc.head.dense(hidden[:, 0]))).squeeze(-1)
    assert torch.allclose(out["logits"][:, 1], score1, atol=1e-5)
    assert torch.allclose(out["loss"], F.cross_entropy(out["logits"], b["labels"]), atol=1e-6)
    masked = mc(**b, choice_mask=torch.tensor([[True, True, False]] * b["labels"].shape[0]))
    assert (masked["logits"][:, 2] < -1e30).all() and torch.allclose(masked["logits"][:, :2], out["logits"][:, :2])


def test_multitask_model_shares_one_encoder(tok, batches):
    enc = tiny_encoder(len(tok))
    model = MultiTaskModel(enc, {"pawsx": (PAIR, 2), "panx": (TAGGING, 7), "tydiqa": (QA, 2),
                                 "siqa": (MULTIPLE_CHOICE, 3)}, seed=3)
    assert set(model.heads) == {"pawsx", "panx", "tydiqa", "siqa"}
    n_encoder = sum(p.numel() for p in enc.parameters())
    assert sum(p.numel() for p in model.parameters()) == n_encoder + sum(
        p.numel() for h in model.heads.values() for p in h.parameters())   # encoder counted once
    assert model(task="pawsx", **batches[PAIR])["logits"].shape[-1] == 2
    assert model(task="panx", **batches[TAGGING])["logits"].shape[-1] == 7
    assert "start_logits" in model(task="tydiqa", **batches[QA])
    loss = model(task="siqa", **batches[MULTIPLE_CHOICE])["loss"]
    loss.backward()
    assert enc.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    assert model.heads["pawsx"].dense.weight.grad is None   # other heads untouched
    with pytest.raises(KeyError):
        model(task="xnli", **batches[PAIR])


def test_saved_intermediate_encoder_gets_fresh_target_head(tok, batches, tmp_path):
    inter = TaskModel(tiny_encoder(len(tok)), PAIR, 3, seed=0)
    opt = torch.optim.SGD(inter.parameters(), lr=0.5)
    for _ in range(2):   # move the weights away from their initialisation
        opt.zero_grad()
        inter(**batches[PAIR])["loss"].backward()
        opt.step()
    out_dir = save_encoder(inter, tmp_path / "encoder", tok)

    saved = load_file(str(out_dir / "model.safetensors"))
    encoder_keys = set(inter.encoder.state_dict())
    assert set(saved) <= encoder_keys and len(saved) >= len(encoder_keys) - 2   # (buffers may be left out)
    assert not any(k.startswith(("head", "out_proj", "pooler")) for k in saved)
    assert json.loads((out_dir / "config.json").read_text())["model_type"] == "xlm-roberta"
    from transformers import AutoTokenizer
    assert AutoTokenizer.from_pretrained(str(out_dir))("a test")["input_ids"] == tok("a test")["input_ids"]

    target = build_task_model(out_dir, PAIR, 2, seed=7)
    target_sd = target.encoder.state_dict()
    for k, v in inter.encoder.state_dict().items():
        assert torch.equal(v, target_sd[k]), k
    assert target.encoder.pooler is None   # loaded with add_pooling_layer=False
    fresh = TaskModel(tiny_encoder(len(tok)), PAIR, 2, seed=7)
    for (k, a), (_, b) in zip(target.head.state_dict().items(), fresh.head.state_dict().items()):
        assert torch.equal(a, b), k   # the seed alone decides the fresh head
    assert not torch.equal(target.head.dense.weight, inter.head.dense.weight)
    assert target.head.dense.bias.abs().sum() == 0 and inter.head.dense.bias.abs().sum() > 0
    other = build_task_model(out_dir, PAIR, 2, seed=8)
    assert not torch.equal(other.head.dense.weight, target.head.dense.weight)
    # the target model runs on the loaded encoder
    assert build_task_model(out_dir, TAGGING, 7)(**batches[TAGGING])["logits"].shape[-1] == 7
