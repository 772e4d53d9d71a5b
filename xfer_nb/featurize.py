"""Tokenise task datasets into model inputs, cached on disk; pad batches dynamically.

`featurize` turns a dataset in one of the fixed family schemas (`xfer_nb.tasks.schema`)
into a `datasets.Dataset` of *unpadded* model inputs. Padding happens per batch in
`collate`, so length-grouped batches are only as long as their longest row.

Column contract of a featurized dataset (what `train.py` / `predict.py` read):

every family
    input_ids        list[int]  (MULTIPLE_CHOICE: list[list[int]], one row per choice)
    attention_mask   same shape as input_ids, all ones (padding comes later)
    token_type_ids   same shape, only when the tokenizer returns them (BERT-style)
    length           int, number of real tokens (MULTIPLE_CHOICE: of the longest choice);
                     the Trainer's default `length_column_name` for length grouping
    example_id       str, the source row's `id` (QA: shared by all windows of a row)
PAIR             labels: int (the source `label`, passed through; -1 stays -1)
MULTIPLE_CHOICE  labels: int (index of the right choice)
TAGGING          labels: list[int], the word's tag id on the FIRST sub-token of each
                     word, -100 on the other sub-tokens and on special tokens
                 word_ids: list[int], the word index of each token, -1 for special tokens
                 With word_token="first_content", a word whose first sub-token is a bare
                 SentencePiece boundary piece ("▁", which XLM-R's tokenizer emits before
                 most pre-split Chinese and Japanese words) is labelled, and later read,
                 on its next sub-token instead; the bare piece gets word id -1. The
                 default "first" is XTREME's protocol (utils_tag.py: the first piece).
                 num_words: int, words in the source row (truncated words included)
QA               start_positions, end_positions: int, token indices of the first answer
                     in this window; 0 (the <s>/CLS token) when the answer is not wholly
                     inside the window or the row has no answer
                 and, with for_training=False, also
                 offset_mapping: list[[start, end] | None], character offsets into the
                     context, None for tokens outside the context (question, specials)
                 context: str, the row's context (for mapping spans back to text)

QA windows follow Hugging Face's run_qa.py: `truncation="only_second"`,
`return_overflowing_tokens`, `stride=doc_stride` (the number of context tokens two
consecutive windows share). Questions longer than `max_query_length` tokens are cut to
that many tokens first (as in the original BERT/XTREME scripts). The stride is clamped
so that every window holds new context: effective stride =
min(doc_stride, (max_seq_length - max_query_length - specials) // 2).

Caching: the result is saved under `cache_dir/<family>-<key>` (default
`xfer_nb.paths.cache_dir()/features`), written atomically, and loaded (memory-mapped)
on a rerun. The key hashes `cache_key_parts(...)`: FEATURIZE_VERSION, the tokenizer's
identity (class, name_or_path, len(tokenizer), special-token ids and a hash of a probe
encoding of multilingual text, as pairs and as pre-split words), the family,
max_seq_length, doc_stride, max_query_length, for_training, word_token (only when it is
not the default, so older entries stay valid), and a content hash of the
dataset (its rows in order, selection applied; so equal data made in two processes hits
the same entry, and any changed row misses).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import datasets
import numpy as np
import pyarrow as pa
import torch

from xfer_nb.io import atomic_path, content_hash
from xfer_nb.tasks.schema import MULTIPLE_CHOICE, PAIR, QA, TAGGING

# Bump when the featurisation code changes what it writes: every cached entry misses.
FEATURIZE_VERSION = 1
IGNORE_INDEX = -100
FAMILIES = (PAIR, TAGGING, QA, MULTIPLE_CHOICE)

_PROBE_PAIRS = [
    ("The quick brown fox jumps over the lazy dog.", "Ça va? Größe, naïve café — 123,456.78"),
    ("日本語の文章です。中文句子。", "हिन्दी वाक्य। Kiswahili ni lugha. Это русский текст."),
    ("ภาษาไทย العربية עברית", "Ελληνικά 한국어 tiếng Việt ñandú   multiple   spaces"),
]
_PROBE_WORDS = [["New", "York", "-", "based", "Übermensch", "東京", "ka-ching", "", "x"]]
WORD_TOKENS = ("first", "first_content")   # which sub-token carries a word's tag (TAGGING)
_BOUNDARY_PIECE = "\u2581"   # SentencePiece's word-boundary mark, as a token on its own


# --------------------------------------------------------------------------- identity

def tokenizer_identity(tokenizer) -> dict[str, Any]:
    """What identifies a tokenizer for caching: a changed vocabulary, normaliser,
    pre-tokeniser or special-token layout changes the probe hash."""
    pair = tokenizer([a for a, _ in _PROBE_PAIRS], [b for _, b in _PROBE_PAIRS],
                     return_offsets_mapping=True)
    words = tokenizer(_PROBE_WORDS, is_split_into_words=True)
    probe = {
        "pair": pair["input_ids"],
        "offsets": [[list(o) for o in seq] for seq in pair["offset_mapping"]],
        "words": words["input_ids"],
        "word_ids": [words.word_ids(i) for i in range(len(_PROBE_WORDS))],
        "types": pair.get("token_type_ids"),
    }
    specials = {name: getattr(tokenizer, f"{name}_token_id", None)
                for name in ("bos", "eos", "cls", "sep", "pad", "unk", "mask")}
    return {
        "class": type(tokenizer).__name__,
        "name_or_path": str(getattr(tokenizer, "name_or_path", "")),
        "vocab_size": len(tokenizer),
        "specials": specials,
        "probe": content_hash(probe, length=16),
    }


def dataset_content_hash(dataset: datasets.Dataset) -> str:
    """sha256 of the dataset's rows in order (Arrow IPC of the table, selection applied)."""
    table = dataset.with_format("arrow")[:] if len(dataset) else dataset.data.table.slice(0, 0)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue()).hexdigest()[:20]


def cache_key_parts(dataset, family, tokenizer, max_seq_length, doc_stride, max_query_length,
                    for_training, word_token: str = "first") -> dict[str, Any]:
    extra = {"word_token": word_token} if family == TAGGING and word_token != "first" else {}
    return {**extra,
        "version": FEATURIZE_VERSION,
        "tokenizer": tokenizer_identity(tokenizer),
        "family": family,
        "max_seq_length": int(max_seq_length),
        "doc_stride": int(doc_stride),
        "max_query_length": int(max_query_length),
        "for_training": bool(for_training),
        "data": None if dataset is None else dataset_content_hash(dataset),
    }


# --------------------------------------------------------------------------- featurize

def featurize(
    dataset: datasets.Dataset,
    family: str,
    tokenizer,
    max_seq_length: int = 128,
    *,
    doc_stride: int = 128,
    max_query_length: int = 64,
    for_training: bool = True,
    word_token: str = "first",
    cache_dir: str | os.PathLike | None | bool = None,
) -> datasets.Dataset:
    """Tokenise `dataset` (columns of `family`'s schema) into model inputs.

    See the module docstring for the columns. `cache_dir=False` turns caching off;
    None means `xfer_nb.paths.cache_dir()/features`. `tokenizer` must be a fast
    tokenizer (word ids and offsets are needed)."""
    if family not in FAMILIES:
        raise ValueError(f"featurize handles families {FAMILIES}, not {family!r}")
    if word_token not in WORD_TOKENS:
        raise ValueError(f"word_token={word_token!r} is not allowed; use one of {WORD_TOKENS}")
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("featurize needs a fast tokenizer (PreTrainedTokenizerFast): word ids and offsets")
    if family == QA and max_query_length + tokenizer.num_special_tokens_to_add(pair=True) + 2 > max_seq_length:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room for context after "
                         f"max_query_length={max_query_length}")

    fn, kwargs = _featurizer(family, tokenizer, max_seq_length, doc_stride, max_query_length, for_training,
                             word_token)

    def compute(fingerprint: str) -> datasets.Dataset:
        # An explicit fingerprint: otherwise `map` dill-hashes `fn` and with it the whole
        # tokenizer (~11 s for XLM-R's 250k pieces).
        return dataset.map(fn, batched=True, batch_size=1000, with_indices=True,
                           remove_columns=dataset.column_names, keep_in_memory=True,
                           load_from_cache_file=False, new_fingerprint=fingerprint,
                           desc=f"featurize {family}", **kwargs)

    if cache_dir is False:
        parts = cache_key_parts(None, family, tokenizer, max_seq_length, doc_stride, max_query_length, for_training,
                                word_token)
        parts["data"] = dataset._fingerprint
        return compute(content_hash(parts, length=20))
    if cache_dir is None:
        from xfer_nb.paths import cache_dir as default_cache
        cache_dir = default_cache() / "features"
    key = content_hash(cache_key_parts(dataset, family, tokenizer, max_seq_length, doc_stride,
                                       max_query_length, for_training, word_token), length=20)
    path = Path(cache_dir) / f"{family}-{key}"
    if (path / "dataset_info.json").is_file():
        return datasets.load_from_disk(str(path))
    result = compute(key)
    try:
        with atomic_path(path) as tmp:
            result.save_to_disk(str(tmp))
    except OSError:
        # Another process finished the same entry first (rename onto a full folder).
        if not (path / "dataset_info.json").is_file():
            raise
    return datasets.load_from_disk(str(path))


def skip_boundary_pieces(input_ids: Sequence[int], word_ids: Sequence[int | None],
                         boundary_id: int | None) -> list[int | None]:
    """Word ids with a word's leading bare boundary piece set to None when the same word
    has a further sub-token, so that sub-token becomes the word's first (its tag's
    carrier). A word that is only the bare piece keeps it."""
    out = list(word_ids)
    if boundary_id is None:
        return out
    for j, w in enumerate(word_ids):
        if (w is not None and input_ids[j] == boundary_id and (j == 0 or word_ids[j - 1] != w)
                and j + 1 < len(word_ids) and word_ids[j + 1] == w):
            out[j] = None
    return out


def _featurizer(family, tokenizer, max_seq_length, doc_stride, max_query_length, for_training,
                word_token="first"):
    keep_types = "token_type_ids" in tokenizer.model_input_names

    def base(enc, i):
        out = {"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i]}
        if keep_types and "token_type_ids" in enc:
            out["token_type_ids"] = enc["token_type_ids"][i]
        return out

    def ids_of(batch, indices):
        return batch["id"] if "id" in batch else [str(i) for i in indices]

    if family == PAIR:
        def fn(batch, indices):
            enc = tokenizer(batch["sentence1"], batch["sentence2"], truncation=True, max_length=max_seq_length)
            rows = [base(enc, i) for i in range(len(indices))]
            return _columns(rows, labels=[int(x) for x in batch["label"]],
                            length=[len(r["input_ids"]) for r in rows], example_id=ids_of(batch, indices))
        return fn, {}

    if family == TAGGING:
        boundary_id = tokenizer.get_vocab().get(_BOUNDARY_PIECE) if word_token == "first_content" else None

        def fn(batch, indices):
            enc = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_seq_length)
            rows, labels, word_ids = [], [], []
            for i, tags in enumerate(batch["tags"]):
                wids = skip_boundary_pieces(enc["input_ids"][i], enc.word_ids(i), boundary_id)
                lab, prev = [], None
                for w in wids:
                    if w is None or w == prev:
                        lab.append(IGNORE_INDEX)
                    else:
                        tag = tags[w] if tags is not None and w < len(tags) else -1
                        lab.append(int(tag) if tag is not None and tag >= 0 else IGNORE_INDEX)
                    prev = w
                rows.append(base(enc, i))
                labels.append(lab)
                word_ids.append([-1 if w is None else w for w in wids])
            return _columns(rows, labels=labels, word_ids=word_ids,
                            num_words=[len(t) for t in batch["tokens"]],
                            length=[len(r["input_ids"]) for r in rows], example_id=ids_of(batch, indices))
        return fn, {}

    if family == MULTIPLE_CHOICE:
        def fn(batch, indices):
            firsts, seconds, owner = [], [], []
            for i, (ctx, q, choices) in enumerate(zip(batch["context"], batch["question"], batch["choices"])):
                for c in choices:
                    firsts.append(ctx)
                    seconds.append(f"{q} {c}".strip() if q else c)
                    owner.append(i)
            enc = tokenizer(firsts, seconds, truncation=True, max_length=max_seq_length)
            n = len(indices)
            per = [[] for _ in range(n)]
            for j, i in enumerate(owner):
                per[i].append(base(enc, j))
            keys = list(per[0][0]) if per and per[0] else ["input_ids", "attention_mask"]
            rows = [{k: [r[k] for r in choice_rows] for k in keys} for choice_rows in per]
            return _columns(rows, labels=[int(x) for x in batch["label"]],
                            length=[max((len(c) for c in r["input_ids"]), default=0) for r in rows],
                            example_id=ids_of(batch, indices))
        return fn, {}

    # QA
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    stride = max(0, min(doc_stride, (max_seq_length - max_query_length - specials) // 2))
    pad_right = tokenizer.padding_side == "right"
    if not pad_right:
        raise ValueError("QA featurisation expects a tokenizer with padding_side='right'")

    def fn(batch, indices):
        questions = [q.lstrip() for q in batch["question"]]
        q_enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
        for i, offs in enumerate(q_enc["offset_mapping"]):
            if len(offs) > max_query_length:
                questions[i] = questions[i][: offs[max_query_length - 1][1]]
        enc = tokenizer(questions, batch["context"], truncation="only_second", max_length=max_seq_length,
                        stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True)
        mapping = enc.pop("overflow_to_sample_mapping")
        ids = ids_of(batch, indices)
        rows, starts, ends, offsets, contexts, ex_ids = [], [], [], [], [], []
        for w, sample in enumerate(mapping):
            seq_ids = enc.sequence_ids(w)
            offs = enc["offset_mapping"][w]
            has_ctx = 1 in seq_ids
            if has_ctx:
                ctx_first = seq_ids.index(1)
                ctx_last = len(seq_ids) - 1 - seq_ids[::-1].index(1)
            answers = batch["answers"][sample]
            s_pos = e_pos = 0
            if has_ctx and answers and answers["answer_start"]:
                start_char = answers["answer_start"][0]
                end_char = start_char + len(answers["text"][0])
                if offs[ctx_first][0] <= start_char and offs[ctx_last][1] >= end_char:
                    s = ctx_first
                    while s <= ctx_last and offs[s][0] <= start_char:
                        s += 1
                    e = ctx_last
                    while e >= ctx_first and offs[e][1] >= end_char:
                        e -= 1
                    s_pos, e_pos = s - 1, e + 1
            rows.append(base(enc, w))
            starts.append(s_pos)
            ends.append(e_pos)
            ex_ids.append(ids[sample])
            if not for_training:
                offsets.append([list(o) if seq_ids[k] == 1 else None for k, o in enumerate(offs)])
                contexts.append(batch["context"][sample])
        extra = {"offset_mapping": offsets, "context": contexts} if not for_training else {}
        return _columns(rows, start_positions=starts, end_positions=ends,
                        length=[len(r["input_ids"]) for r in rows], example_id=ex_ids, **extra)
    return fn, {}


def _columns(rows: list[dict], **extra) -> dict[str, list]:
    keys = rows[0].keys() if rows else ("input_ids", "attention_mask")
    out = {k: [r[k] for r in rows] for k in keys}
    out.update(extra)
    return out


# --------------------------------------------------------------------------- batches

_PAD_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def collate(features: Sequence[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of featurized rows to the longest in the batch; return torch tensors.

    input_ids pad with `pad_token_id`, attention_mask and token_type_ids with 0, list
    labels (tagging) with -100. Multiple-choice rows ([num_choices][len]) pad every
    choice to the longest choice of the batch; when rows have different numbers of
    choices the missing choices are filled with a one-token dummy and a
    `choice_mask` (bool [batch, num_choices]) marks the real ones. Scalar labels,
    start_positions and end_positions become int64 vectors. Other columns (length,
    example_id, word_ids, offset_mapping, context, ...) are left out."""
    if not features:
        raise ValueError("collate got an empty batch")
    first = features[0]
    mc = bool(first["input_ids"]) and isinstance(first["input_ids"][0], (list, tuple))
    batch: dict[str, torch.Tensor] = {}
    if mc:
        n_choices = [len(f["input_ids"]) for f in features]
        c_max = max(n_choices)
        width = max(len(seq) for f in features for seq in f["input_ids"])
        for key in _PAD_KEYS:
            if key not in first:
                continue
            pad = pad_token_id if key == "input_ids" else 0
            arr = np.full((len(features), c_max, width), pad, dtype=np.int64)
            for b, f in enumerate(features):
                for c, seq in enumerate(f[key]):
                    arr[b, c, : len(seq)] = seq
                if key == "attention_mask":
                    arr[b, len(f[key]):, 0] = 1   # dummy choices: one attended pad token
            batch[key] = torch.from_numpy(arr)
        if len(set(n_choices)) > 1:
            batch["choice_mask"] = torch.tensor([[c < n for c in range(c_max)] for n in n_choices])
    else:
        width = max(len(f["input_ids"]) for f in features)
        for key in _PAD_KEYS:
            if key not in first:
                continue
            pad = pad_token_id if key == "input_ids" else 0
            arr = np.full((len(features), width), pad, dtype=np.int64)
            for b, f in enumerate(features):
                arr[b, : len(f[key])] = f[key]
            batch[key] = torch.from_numpy(arr)
    if "labels" in first:
        if isinstance(first["labels"], (list, tuple)):
            arr = np.full((len(features), width), IGNORE_INDEX, dtype=np.int64)
            for b, f in enumerate(features):
                arr[b, : len(f["labels"])] = f["labels"]
            batch["labels"] = torch.from_numpy(arr)
        else:
            batch["labels"] = torch.tensor([int(f["labels"]) for f in features], dtype=torch.long)
    for key in ("start_positions", "end_positions"):
        if key in first:
            batch[key] = torch.tensor([int(f[key]) for f in features], dtype=torch.long)
    return batch


def used_token_ids(*featurized: datasets.Dataset | Iterable[dict]) -> set[int]:
    """Every token id in the `input_ids` of the given featurized datasets (for pruning the
    vocabulary to the pieces a study's data uses). It holds the special tokens that the
    data contains (<s>, </s>) but not those it never does: add the pad/unk/mask ids
    yourself if the pruned model needs them."""
    used: set[int] = set()
    for ds in featurized:
        if isinstance(ds, datasets.Dataset):
            col = ds.with_format("arrow")[:]["input_ids"] if len(ds) else pa.chunked_array([], pa.list_(pa.int64()))
            arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
            while pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
                arr = arr.flatten()
            used.update(np.unique(arr.to_numpy(zero_copy_only=False)).tolist())
        else:
            for row in ds:
                ids = row["input_ids"]
                if ids and isinstance(ids[0], (list, tuple)):
                    for seq in ids:
                        used.update(seq)
                else:
                    used.update(ids)
    return {int(i) for i in used}
