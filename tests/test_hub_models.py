"""Loading encoders by name, retrieval embeddings and vocabulary pruning, on tiny random models."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from xfer_nb.models import (
    HubUnreachableError,
    default_retrieval_layer,
    load_encoder,
    load_tokenizer,
    prune_vocabulary,
    remap_ids,
    restore_vocabulary,
    sentence_embeddings,
)
from xfer_nb.models.tiny import build_tiny_model, build_tiny_tokenizer, save_tiny_encoder

SENTENCES = [
    "the dog is big and the cat is small",
    "hello world",
    "a",
    "",
    "Naye akasema, Mama, niko nyumbani.",
    "привет мир, это дом",
    "你好 世界",
    "he said that the people were not at home because of the bus",
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one torch thread (two spinning OpenMP threads are far slower on a busy 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=["xlm-roberta", "bert"])
def tiny(request, tmp_path_factory):
    folder = save_tiny_encoder(tmp_path_factory.mktemp(request.param) / "enc", model_type=request.param, seed=3)
    return folder, load_encoder(folder), load_tokenizer(folder)


def _reference(model, tok, sentences, layer, pooling="mean"):
    """One sentence at a time, no padding, all hidden states."""
    out = []
    for s in sentences:
        enc = tok(s, return_tensors="pt")
        with torch.no_grad():
            h = model(**enc, output_hidden_states=True).hidden_states[layer][0]
        v = h.mean(0) if pooling == "mean" else h[0]
        out.append((v / v.norm()).numpy())
    return np.stack(out)


def test_tiny_tokenizer_has_xlmr_layout():
    from transformers import XLMRobertaTokenizerFast

    tok = build_tiny_tokenizer()
    assert isinstance(tok, XLMRobertaTokenizerFast)
    assert tok.convert_tokens_to_ids(["<s>", "<pad>", "</s>", "<unk>"]) == [0, 1, 2, 3]
    assert tok.mask_token_id == len(tok) - 1
    a, b = tok("hello world").input_ids, tok("the dog").input_ids
    assert a[0] == 0 and a[-1] == 2 and len(a) == 4  # ▁hello ▁world
    assert tok("hello world", "the dog").input_ids == a + [2] + b[1:]  # <s> A </s></s> B </s>
    assert 3 not in tok(SENTENCES).input_ids[0]  # known words need no <unk>


def test_load_local_folder(tiny):
    folder, model, tok = tiny
    fresh = build_tiny_model(len(tok), model_type=model.config.model_type, seed=3)
    ids = torch.tensor([tok("hello world").input_ids])
    with torch.no_grad():
        assert torch.allclose(model(ids).last_hidden_state, fresh(ids).last_hidden_state)
    assert type(model).__name__ in {"XLMRobertaModel", "BertModel"}
    from transformers import AutoModelForSequenceClassification

    head = load_encoder(folder, auto_class=AutoModelForSequenceClassification, num_labels=3)
    assert head.config.num_labels == 3


def test_hub_name_offline_gives_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    for loader in (load_encoder, load_tokenizer):
        with pytest.raises(HubUnreachableError) as info:
            loader("xlm-roberta-large")
        msg = str(info.value)
        assert "model_name_or_path='xlm-roberta-large'" in msg and "unreachable" in msg
        assert "embedded:multilingual-e5-small" in msg
        assert info.value.__cause__ is None and info.value.__suppress_context__  # one message, no chain


def test_missing_local_folder_and_bad_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        load_encoder(str(tmp_path / "not" / "there"))
    with pytest.raises(ValueError, match="embedded:multilingual-e5-small"):
        load_encoder("embedded:e5-huge")
    with pytest.raises(ValueError, match="model_name_or_path"):
        load_tokenizer("")


def test_default_retrieval_layer():
    assert default_retrieval_layer(24) == 14  # XTREME / jiant for XLM-R Large
    assert default_retrieval_layer(12) == 8   # XTREME's mBERT choice (specific_layer 7 of hidden_states[1:])
    assert default_retrieval_layer(2) == 2


def test_sentence_embeddings_match_unbatched_reference(tiny):
    _, model, tok = tiny
    n = model.config.num_hidden_layers
    for layer in range(n + 1):
        got = sentence_embeddings(model, tok, SENTENCES, layer=layer, batch_size=3)
        assert got.dtype == np.float32 and got.shape == (len(SENTENCES), model.config.hidden_size)
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        assert np.abs(got - _reference(model, tok, SENTENCES, layer)).max() < 1e-5, layer
    got = sentence_embeddings(model, tok, SENTENCES, layer=-2, pooling="cls", batch_size=4)
    assert np.abs(got - _reference(model, tok, SENTENCES, n - 1, pooling="cls")).max() < 1e-5
    default = sentence_embeddings(model, tok, SENTENCES)
    assert np.allclose(default, sentence_embeddings(model, tok, SENTENCES, layer=default_retrieval_layer(n)))


def test_sentence_embeddings_order_batching_and_mode(tiny):
    _, model, tok = tiny
    base = sentence_embeddings(model, tok, SENTENCES, layer=1, batch_size=64)
    perm = np.random.default_rng(0).permutation(len(SENTENCES))
    shuffled = sentence_embeddings(model, tok, [SENTENCES[i] for i in perm], layer=1, batch_size=2)
    assert np.abs(shuffled - base[perm]).max() < 1e-5  # original order, whatever the batching
    assert not np.allclose(base[0], base[1])
    model.train()
    sentence_embeddings(model, tok, SENTENCES[:2], layer=1)
    assert model.training  # mode restored
    model.eval()
    assert len(model.base_model.encoder.layer) == model.config.num_hidden_layers  # layers restored
    assert sentence_embeddings(model, tok, [], layer=1).shape == (0, model.config.hidden_size)
    long = ["the dog " * 200]
    assert sentence_embeddings(model, tok, long, max_length=16).shape == (1, model.config.hidden_size)


def test_sentence_embeddings_bad_arguments(tiny):
    _, model, tok = tiny
    n = model.config.num_hidden_layers
    with pytest.raises(ValueError, match="pooling='max'.*mean.*cls"):
        sentence_embeddings(model, tok, SENTENCES, pooling="max")
    with pytest.raises(ValueError, match=f"layer=99 .*{-(n + 1)} to {n}"):
        sentence_embeddings(model, tok, SENTENCES, layer=99)
    with pytest.raises(ValueError, match="batch_size=0"):
        sentence_embeddings(model, tok, SENTENCES, batch_size=0)
    with pytest.raises(ValueError, match="max_length=1"):
        sentence_embeddings(model, tok, SENTENCES, max_length=1)
    with pytest.raises(ValueError, match="sentences must be a list of strings"):
        sentence_embeddings(model, tok, "hello world")


@pytest.mark.parametrize("model_type", ["xlm-roberta", "bert"])
def test_prune_and_restore_vocabulary_round_trip(model_type, tmp_path):
    tok = build_tiny_tokenizer()
    full_model = build_tiny_model(len(tok), model_type=model_type, seed=1)
    model = build_tiny_model(len(tok), model_type=model_type, seed=1)
    enc = tok(SENTENCES[:5], padding=True, return_tensors="pt")
    with torch.no_grad():
        reference = full_model(**enc).last_hidden_state

    full = model.get_input_embeddings().weight.detach()
    model, old_to_new = prune_vocabulary(model, enc["input_ids"], special_ids=tok.all_special_ids)
    new_to_old = np.flatnonzero(old_to_new >= 0)
    kept = model.get_input_embeddings().num_embeddings
    assert kept == len(np.union1d(enc["input_ids"].unique().numpy(), tok.all_special_ids)) < len(tok) / 4
    assert model.config.vocab_size == kept and model.config.pad_token_id == 1  # specials keep their ids
    new_ids = remap_ids(enc["input_ids"], old_to_new)
    with torch.no_grad():
        pruned_out = model(input_ids=new_ids, attention_mask=enc["attention_mask"]).last_hidden_state
    assert torch.allclose(pruned_out, reference, atol=1e-6)
    assert remap_ids([[0, 2]], old_to_new) == [[0, 2]]
    with pytest.raises(KeyError, match="pruned"):
        remap_ids(torch.tensor([int(np.flatnonzero(old_to_new < 0)[0])]), old_to_new)

    # "train" the pruned rows, then scatter them back into the full matrix
    with torch.no_grad():
        model.get_input_embeddings().weight.add_(torch.randn_like(model.get_input_embeddings().weight) * 0.1)
        trained = model(input_ids=new_ids, attention_mask=enc["attention_mask"]).last_hidden_state
    model = restore_vocabulary(model, full, new_to_old)
    assert model.config.vocab_size == len(tok) and model.get_input_embeddings().num_embeddings == len(tok)
    with torch.no_grad():
        restored = model(**enc).last_hidden_state
    assert torch.allclose(restored, trained, atol=1e-6)
    assert not torch.allclose(restored, reference, atol=1e-3)
    untouched = np.flatnonzero(old_to_new < 0)
    assert torch.equal(model.get_input_embeddings().weight[untouched], full[untouched])
    model.save_pretrained(tmp_path)
    again = load_encoder(tmp_path)
    with torch.no_grad():
        assert torch.allclose(again(**enc).last_hidden_state, trained, atol=1e-6)


def test_prune_bad_ids():
    tok = build_tiny_tokenizer()
    model = build_tiny_model(len(tok))
    with pytest.raises(ValueError, match=r"tokenizer_ids_used holds ids \[99999\]"):
        prune_vocabulary(model, [5, 99999])
    with pytest.raises(ValueError, match="new_to_old has 3 entries"):
        restore_vocabulary(model, model.get_input_embeddings().weight.detach(), [0, 1, 2])


def test_revision_is_read_from_the_name_of_a_hub_model():
    from xfer_nb.models.hub import split_revision

    assert split_revision("FacebookAI/xlm-roberta-large@c23d21b0") == ("FacebookAI/xlm-roberta-large", "c23d21b0")
    assert split_revision("xlm-roberta-large@main") == ("xlm-roberta-large", "main")
    assert split_revision("xlm-roberta-large") == ("xlm-roberta-large", None)
    assert split_revision("./runs/a@b") == ("./runs/a@b", None)  # a path is never split
    assert split_revision("embedded:multilingual-e5-small") == ("embedded:multilingual-e5-small", None)
    with pytest.raises(ValueError, match=r"model_name_or_path='org/name@'.*'<owner>/<name>@<revision>'"):
        split_revision("org/name@")


def _cached_hub_model(cache, repo: str, commit: str, seed: int) -> None:
    """A hub model in the Hugging Face cache layout (snapshots/<commit>, refs/main), as a
    download of `repo` at `commit` leaves it."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    save_tiny_encoder(folder / "snapshots" / commit, model_type="xlm-roberta", seed=seed)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(commit)


def test_a_pinned_revision_loads_that_commit_from_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    old, new = "a" * 40, "b" * 40
    _cached_hub_model(tmp_path, "xfer-nb/tiny", old, seed=1)
    _cached_hub_model(tmp_path, "xfer-nb/tiny", new, seed=2)  # main now points at the newer commit
    ids = torch.tensor([build_tiny_tokenizer()("hello world").input_ids])
    reference = {c: build_tiny_model(len(build_tiny_tokenizer()), model_type="xlm-roberta", seed=s)
                 for c, s in ((old, 1), (new, 2))}

    def same(model, commit):
        with torch.no_grad():
            return torch.allclose(model(ids).last_hidden_state, reference[commit](ids).last_hidden_state)

    assert same(load_encoder(f"xfer-nb/tiny@{old}", cache_dir=tmp_path), old)
    assert same(load_encoder("xfer-nb/tiny", revision=old, cache_dir=tmp_path), old)
    assert same(load_encoder("xfer-nb/tiny", cache_dir=tmp_path), new)  # unpinned: the tip of main
    assert load_tokenizer(f"xfer-nb/tiny@{old}", cache_dir=tmp_path)("hello world").input_ids == ids[0].tolist()
    from xfer_nb.models import heads  # the pipeline's encoder loader honours the pin too
    assert same(heads.load_encoder(f"xfer-nb/tiny@{old}", cache_dir=tmp_path), old)
    with pytest.raises(HubUnreachableError, match=rf"at revision='{'c' * 40}' is not in the local cache"):
        load_encoder(f"xfer-nb/tiny@{'c' * 40}", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="pins revision .* but revision='main' was also given"):
        load_encoder(f"xfer-nb/tiny@{old}", revision="main", cache_dir=tmp_path)


def test_revision_is_refused_for_a_local_folder(tmp_path):
    folder = save_tiny_encoder(tmp_path / "enc", model_type="bert", seed=0)
    with pytest.raises(ValueError, match="revision='main' applies to hub names only"):
        load_encoder(folder, revision="main")
