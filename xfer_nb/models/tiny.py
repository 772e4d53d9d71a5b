"""Tiny randomly initialised XLM-R-style encoders and a small tokenizer, for tests.

Everything is built in memory (no download, a few ms): a Unigram tokenizer with XLM-R's
special-token layout (<s>=0, <pad>=1, </s>=2, <unk>=3, ..., <mask> last) over a few hundred
pieces — common words in several languages plus every single character they use and the
printable ASCII set — and an ``XLMRobertaModel`` (or ``BertModel``) of a few thousand
parameters. Other modules' tests use them through :func:`save_tiny_encoder`::

    folder = save_tiny_encoder(tmp_path / "tiny")
    model = AutoModel.from_pretrained(folder); tok = AutoTokenizer.from_pretrained(folder)
"""
from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Iterable

SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
MODEL_TYPES = ("xlm-roberta", "bert")

#: a small multilingual word list; every character in it gets its own piece as well
TINY_WORDS = (
    # English
    "the a an and or of to in on is are was were be not no yes he she it they we you I "
    "said home mother mom called school bus word man woman child dog cat house water food "
    "good bad big small new old day night time year people world hello question answer "
    "because but with from for at by this that what who where when how why all some "
    # French / Spanish / German
    "le la les et est une un il elle dans pour avec pas bonjour monde el los las y es en "
    "con por para hola mundo der die das und ist nicht ein eine mit auf hallo welt "
    # Swahili
    "na ya wa kwa ni katika mama nyumbani habari asubuhi rafiki yangu sana watu mtoto "
    # Russian / Hindi / Urdu / Arabic / Chinese
    "и в не на он она это мир привет дом "
    "और है में के की यह नमस्ते दुनिया घर "
    "اور ہے میں کے کی یہ گھر مرحبا العالم في من على "
    "我 你 他 的 是 不 在 人 世界 你好 家"
).split()


def tiny_vocab(extra_words: Iterable[str] = ()) -> list[tuple[str, float]]:
    """``(piece, score)`` pairs in XLM-R's layout, <mask> last."""
    words = list(dict.fromkeys([*TINY_WORDS, *extra_words]))
    chars = sorted(set("".join(words)) | set(string.ascii_letters + string.digits + string.punctuation))
    vocab: list[tuple[str, float]] = [(s, 0.0) for s in SPECIALS]
    seen = set(SPECIALS)

    def add(piece: str, score: float) -> None:
        if piece not in seen:
            seen.add(piece)
            vocab.append((piece, score))

    add("▁", -3.0)
    for i, w in enumerate(words):
        add("▁" + w, -4.0 - 0.001 * i)
        add(w, -6.0 - 0.001 * i)
    for c in chars:
        add("▁" + c, -9.0)
        add(c, -10.0)
    vocab.append(("<mask>", 0.0))
    return vocab


def build_tiny_tokenizer(extra_words: Iterable[str] = (), model_max_length: int = 128):
    """An ``XLMRobertaTokenizer`` (tokenizers backend) over :func:`tiny_vocab`."""
    from transformers import XLMRobertaTokenizer

    return XLMRobertaTokenizer(vocab=tiny_vocab(extra_words), model_max_length=model_max_length)


def tiny_config(vocab_size: int, model_type: str = "xlm-roberta", hidden_size: int = 32,
                num_hidden_layers: int = 2, num_attention_heads: int = 2, intermediate_size: int = 64,
                max_length: int = 128, **kw):
    """A tiny config; `max_length` = longest input in tokens (XLM-R adds its 2 offset rows)."""
    from transformers import BertConfig, XLMRobertaConfig

    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type={model_type!r} is not supported; allowed: {list(MODEL_TYPES)}")
    common = dict(vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
                  num_attention_heads=num_attention_heads, intermediate_size=intermediate_size,
                  pad_token_id=1, bos_token_id=0, eos_token_id=2, **kw)
    if model_type == "xlm-roberta":
        return XLMRobertaConfig(max_position_embeddings=max_length + 2, type_vocab_size=1, **common)
    return BertConfig(max_position_embeddings=max_length, type_vocab_size=2, **common)


def build_tiny_model(vocab_size: int, model_type: str = "xlm-roberta", seed: int = 0, auto_class=None, **config_kw):
    """A randomly initialised tiny encoder (``AutoModel`` unless `auto_class` is given), seeded
    without disturbing the global torch RNG."""
    import torch

    if auto_class is None:
        from transformers import AutoModel as auto_class
    config = tiny_config(vocab_size, model_type=model_type, **config_kw)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = auto_class.from_config(config)
    return model.eval()


def save_tiny_encoder(folder: str | os.PathLike, model_type: str = "xlm-roberta", seed: int = 0,
                      extra_words: Iterable[str] = (), **config_kw) -> Path:
    """Write a tiny tokenizer + encoder into `folder` (loadable with the Auto classes)."""
    folder = Path(folder)
    tok = build_tiny_tokenizer(extra_words, model_max_length=config_kw.get("max_length", 128))
    model = build_tiny_model(len(tok), model_type=model_type, seed=seed, **config_kw)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder
