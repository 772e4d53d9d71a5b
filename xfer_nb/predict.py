"""Batched inference on featurized datasets, and mapping of outputs back to examples.

`predict` runs under `torch.inference_mode` on length-sorted batches (each padded only to
its own longest row), then restores the dataset's order. Per CPU-PERFORMANCE.md, run it
with one thread per process (`torch.set_num_threads(1)` / OMP_NUM_THREADS=1, set by the
caller, or pass num_threads=1) and batches of 32-64.

Returns
    PAIR, MULTIPLE_CHOICE  list[int]: the arg-max label / choice per example
    TAGGING                TagPredictions (a list[list[int]]): one tag id per WORD of each
                           example, read from the word's first sub-token. Words with no
                           token (cut off by max_seq_length, or words the tokenizer turns
                           into nothing) get `fill_tag_id`; when that is None, the tag
                           predicted most often over the whole dataset (for PAN-X that is
                           "O"). The result's `.filled_words` / `.total_words` count them.
    QA                     dict example_id -> answer text: the best span over all windows
                           of the example (Hugging Face run_qa post-processing: n-best
                           start and end logits per window, spans inside the context only,
                           end >= start, at most max_answer_length tokens, score =
                           start + end logit), cut from the context by character offsets.
                           "" when no window has a valid span. Needs a dataset made with
                           `featurize(..., for_training=False)`.
"""
from __future__ import annotations

import collections
import contextlib
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from xfer_nb.featurize import collate
from xfer_nb.tasks.schema import MULTIPLE_CHOICE, PAIR, QA, TAGGING

_TARGET_KEYS = ("labels", "start_positions", "end_positions")


class TagPredictions(list):
    """list[list[int]] of tag ids per word, with counts of words that had no token."""
    filled_words: int = 0
    total_words: int = 0


@contextlib.contextmanager
def _threads(n: int | None):
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _pad_id(model) -> int:
    config = getattr(model, "config", None)
    pad = getattr(config, "pad_token_id", None)
    return 0 if pad is None else int(pad)


def model_outputs(model: torch.nn.Module, featurized, family: str, *, batch_size: int = 64, task: str | None = None,
                  pad_token_id: int | None = None, num_threads: int | None = None,
                  precision: str = "fp32") -> list[dict[str, np.ndarray]]:
    """Raw outputs per row of `featurized`, in its order, cut to the row's real length:
    {"logits": ...} (PAIR [num_labels], MC [num_choices], TAGGING [len, num_labels]) or
    {"start_logits": [len], "end_logits": [len]} (QA). `precision` as in training
    (``xfer_nb.train``: "bf16"/"fp16" autocast the forward pass, "auto" picks bf16 where
    the device has it natively); outputs are always float32."""
    n = len(featurized)
    if n == 0:
        return []
    lengths = np.asarray(featurized["length"] if hasattr(featurized, "column_names")
                         else [r["length"] for r in featurized], dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")   # longest first: memory peak shows up at once
    pad = _pad_id(model) if pad_token_id is None else pad_token_id
    is_dataset = hasattr(featurized, "select_columns")
    if is_dataset:   # read only the model inputs per batch (not offsets, contexts, ...)
        featurized = featurized.select_columns(
            [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in featurized.column_names])
    results: list[dict[str, np.ndarray] | None] = [None] * n
    device = next(model.parameters()).device   # batches go where the model is (CPU or CUDA)
    from xfer_nb.devices import autocast_for
    autocast = autocast_for(precision, device)   # training's rules and errors
    was_training = model.training
    model.eval()
    try:
        with _threads(num_threads), torch.inference_mode(), autocast:
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size].tolist()
                if is_dataset:   # column dict -> row dicts
                    cols = featurized[idx]
                    rows = [{k: cols[k][j] for k in cols} for j in range(len(idx))]
                else:
                    rows = [featurized[i] for i in idx]
                batch = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in collate(rows, pad).items()
                         if k not in _TARGET_KEYS}
                out = model(task=task, **batch) if task is not None else model(**batch)
                if family == QA:
                    s = out["start_logits"].float().cpu().numpy()
                    e = out["end_logits"].float().cpu().numpy()
                    for j, i in enumerate(idx):
                        L = int(lengths[i])
                        results[i] = {"start_logits": s[j, :L].copy(), "end_logits": e[j, :L].copy()}
                else:
                    logits = out["logits"].float().cpu().numpy()
                    for j, i in enumerate(idx):
                        row = logits[j, : int(lengths[i])] if family == TAGGING else logits[j]
                        results[i] = {"logits": row.copy()}
    finally:
        model.train(was_training)
    return results  # type: ignore[return-value]


def predict(model: torch.nn.Module, featurized, family: str, *, batch_size: int = 64, task: str | None = None,
            max_answer_length: int = 30, n_best_size: int = 20, fill_tag_id: int | None = None,
            pad_token_id: int | None = None, num_threads: int | None = None, precision: str = "fp32"):
    """Predictions for every example of `featurized` (see the module docstring).

    `task` names the head of a MultiTaskModel. `pad_token_id` defaults to the model
    config's. `num_threads`, when given, is set for the call and restored after.
    `precision`: see `model_outputs`."""
    outputs = model_outputs(model, featurized, family, batch_size=batch_size, task=task,
                            pad_token_id=pad_token_id, num_threads=num_threads, precision=precision)
    if family in (PAIR, MULTIPLE_CHOICE):
        return [int(np.argmax(o["logits"])) for o in outputs]
    if family == TAGGING:
        return tags_per_word([np.argmax(o["logits"], axis=-1) for o in outputs], featurized["word_ids"],
                             featurized["num_words"], fill_tag_id=fill_tag_id)
    if family == QA:
        missing = [c for c in ("example_id", "offset_mapping", "context") if c not in featurized.column_names]
        if missing:
            raise ValueError(f"QA predictions need featurize(..., for_training=False); missing columns {missing}")
        return postprocess_qa(featurized, [o["start_logits"] for o in outputs], [o["end_logits"] for o in outputs],
                              n_best_size=n_best_size, max_answer_length=max_answer_length)
    raise ValueError(f"predict handles {PAIR, TAGGING, QA, MULTIPLE_CHOICE}, not {family!r}")


def tags_per_word(token_preds: Sequence[Sequence[int]], word_ids: Sequence[Sequence[int]],
                  num_words: Sequence[int], *, fill_tag_id: int | None = None) -> TagPredictions:
    """Map per-token tag ids to one per word (the word's first sub-token), filling words
    without a token with `fill_tag_id` (None: the most frequent predicted tag)."""
    per_word: list[list[int | None]] = []
    counts: collections.Counter = collections.Counter()
    for preds, wids, nw in zip(token_preds, word_ids, num_words):
        words: list[int | None] = [None] * int(nw)
        prev = None
        for p, w in zip(preds, wids):
            if w is not None and w >= 0 and w != prev and w < nw and words[w] is None:
                words[w] = int(p)
                counts[int(p)] += 1
            prev = w
        per_word.append(words)
    fill = fill_tag_id if fill_tag_id is not None else (counts.most_common(1)[0][0] if counts else 0)
    result = TagPredictions()
    for words in per_word:
        result.filled_words += sum(w is None for w in words)
        result.total_words += len(words)
        result.append([fill if w is None else w for w in words])
    return result


def postprocess_qa(features, all_start_logits: Sequence[Sequence[float]], all_end_logits: Sequence[Sequence[float]],
                   *, n_best_size: int = 20, max_answer_length: int = 30) -> dict[str, str]:
    """The best answer text per example over all its windows (Hugging Face run_qa,
    SQuAD v1 style: no null answer). `features` gives, per window, `example_id`,
    `offset_mapping` (None outside the context) and `context`: a featurized dataset or
    a list of dicts. Examples come out in the order of their first window."""
    if hasattr(features, "column_names"):
        columns = {c: features[c] for c in ("example_id", "offset_mapping", "context")}
        windows: Iterable[Mapping[str, Any]] = (
            {c: columns[c][i] for c in columns} for i in range(len(features)))
    else:
        windows = features
    best: dict[str, tuple[float, str]] = {}
    for feat, start_logits, end_logits in zip(windows, all_start_logits, all_end_logits):
        ex = feat["example_id"]
        if ex not in best:
            best[ex] = (-np.inf, "")
        offsets = feat["offset_mapping"]
        start_logits = np.asarray(start_logits, dtype=np.float64)
        end_logits = np.asarray(end_logits, dtype=np.float64)
        n_tok = min(len(offsets), len(start_logits), len(end_logits))
        starts = np.argsort(start_logits[:n_tok])[::-1][:n_best_size]
        ends = np.argsort(end_logits[:n_tok])[::-1][:n_best_size]
        for s in starts:
            if offsets[s] is None or len(offsets[s]) < 2:
                continue
            for e in ends:
                if offsets[e] is None or len(offsets[e]) < 2 or e < s or e - s + 1 > max_answer_length:
                    continue
                score = float(start_logits[s] + end_logits[e])
                if score > best[ex][0]:
                    best[ex] = (score, feat["context"][offsets[s][0]: offsets[e][1]])
    return {ex: text for ex, (_, text) in best.items()}
