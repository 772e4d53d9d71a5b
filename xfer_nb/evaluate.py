"""XTREME evaluation metrics: pure functions and the table that picks them per task.

This mirrors google-research/xtreme's ``evaluate.py`` (``METRIC_FUNCTION`` per task) and
the official scripts it calls, so that numbers computed here can be set beside the ones
in XTREME and in Phang et al. 2020 (jiant). Everything is pure: lists / numpy arrays in,
floats out; nothing reads files or models.

Conventions
-----------
* **Percentages.** Every score is in percent, 0-100, as XTREME reports it. The only
  value that is not a percentage is the BUCC ``threshold`` (a raw margin score).
* **Argument order.** Every metric function takes ``(predictions, references)``, in
  that order (seqeval and xtreme take the gold side first; only precision and recall
  depend on the order, and the functions here name them by the usual meaning).
* Inputs of different lengths, empty evaluation sets, unknown tasks, metrics or
  languages raise ``ValueError``.
* **Refused, never scored** (``Unscorable``, a ``ValueError`` that names the task, the
  language and how many items are bad): NaN labels, NaN or infinite embeddings, gold
  indices outside the candidates, and QA predictions keyed by id that lack some of the
  questions' ids. XTREME's scripts would score these as wrong (or, for a NaN embedding,
  as index 0, which may be right): a silent wrong number.

Protocols, per task family (and where they come from)
-----------------------------------------------------
* **Accuracy** (XNLI, PAWS-X, XCOPA and the other classification / multiple-choice
  tasks; Tatoeba on predicted indices): share of exact matches, as xtreme's
  ``accuracy``.
* **Span F1** (PAN-X, UD-POS): micro precision / recall / F1 over chunks exactly as
  ``seqeval==0.0.12`` computes them (the version jiant pins and the one ``pip install
  seqeval`` gave XTREME in 2020): chunks are read off the tag strings by seqeval's
  ``get_entities`` with its default (non-strict, IOB1-tolerant) rules, sentences are
  joined with an ``O`` between them, and a chunk is correct when its type, start and end
  all match. For PAN-X (IOB2) this means an ``I-X`` that follows ``O`` or a different
  type *starts* a new entity, and a type change inside a run ends one.
  For UD-POS, XTREME's ``run_tag.py`` calls the very same ``f1_score`` on the UPOS tag
  strings. The first letter of a tag is then read as the chunk prefix and the whole tag
  as its type, so the scored units are **runs of identical tags** (``NOUN NOUN`` is one
  chunk), except that ``SCONJ`` and ``SYM`` (first letter ``S``, "single") always
  stand alone. This is not token accuracy; :func:`token_accuracy` is given as a second
  UD-POS metric. (seqeval >= 1.0 reads the type as ``tag[1:]``, which makes ``CCONJ`` and
  ``SCONJ`` the same type and ``X`` the same type as ``O``; numbers then differ slightly.
  We follow 0.0.12.)
* **QA** exact match and F1, maximum over the gold answers, averaged over questions:
  XQuAD, TyDiQA-GoldP and SQuAD v1.1 use the SQuAD v1.1 script's normalisation
  (lower-case, drop ASCII punctuation, drop English articles a/an/the, split on
  whitespace) as XTREME does, even for Chinese or Thai, where F1 then equals EM for
  unsegmented answers. MLQA uses MLQA's official script per answer language: all
  Unicode punctuation (category P*) removed, language-specific articles (en a/an/the;
  es un/una/unos/unas/el/la/los/las; de ein/eine/einen/einem/eines/einer/der/die/das/
  den/dem/des; vi của/là/cái/chiếc/những; ar every ``ال``; none for hi and zh), and zh
  split into single CJK characters (U+4E00-U+9FA5) with whitespace runs between them
  ("mixed segmentation"). SQuAD v2.0 uses the v2.0 script: unanswerable questions have
  the empty string as their only gold answer, and an empty prediction on one scores 1.
  A missing prediction (``None``) scores 0 (v1.1 and MLQA scripts) or is left out of
  the average (v2.0 script), like the official scripts.
* **Tatoeba**: cosine nearest neighbour (top-1) of each query sentence among the
  candidate sentences, accuracy against the gold index; no margin (XTREME's and
  jiant's ``similarity_search``: an exact L2 index over normalised vectors). Note the
  direction there: the index holds the non-English side and the **English sentences
  are the queries**. To reproduce XTREME, call ``tatoeba_accuracy(eng, xx, gold)``.
* **BUCC 2018**: xtreme's ``utils_retrieve.mine_bitext`` (ratio margin, k=4, candidates
  from forward and backward best pairs, ``retrieval='max'``: greedy one-to-one by
  descending score) then ``bucc_eval``: the threshold is set to maximise F1 against the
  gold pairs (midpoint between the best cut's score and the next one) and pairs scoring
  at or above it are extracted. XTREME fits that threshold on BUCC *dev* and applies it
  to test. Offline only zh-en *dev* exists, so here the threshold is fitted on the very
  pairs it is scored on: an **oracle** upper bound, not a held-out score. The threshold
  is returned so that it can be reported or reused (``threshold=`` applies a given one).
"""
from __future__ import annotations

import math
import re
import string
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "MetricSpec", "METRICS", "TASK_METRICS", "PRIMARY_METRIC", "compute", "metric_rows",
    "accuracy", "get_entities", "span_prf", "span_f1", "span_precision", "span_recall",
    "token_accuracy", "squad_normalize", "mlqa_normalize", "MLQA_LANGUAGES", "QA_NORMALISATIONS", "qa_scores",
    "nearest_neighbors", "tatoeba_predict", "tatoeba_accuracy",
    "bucc_mine", "bucc_optimize_threshold", "bucc_pair_prf", "bucc_scores", "bucc_mine_and_score", "Unscorable",
]


class Unscorable(ValueError):
    """Input a metric cannot score honestly (NaN labels or embeddings, gold indices out of
    range, missing prediction ids). The message names the task, the language and the count."""

    def __init__(self, problem: str, task: str | None = None, language: str | None = None):
        self.problem, self.task, self.language = problem, task, language
        super().__init__(self._text())

    def _text(self) -> str:
        where = f"{self.task or '?'}/{self.language or '?'}: " if (self.task or self.language) else ""
        return f"{where}cannot score: {self.problem}"

    def at(self, task: str | None, language: str | None) -> "Unscorable":
        return Unscorable(self.problem, self.task or task, self.language or language)


def _is_nan(x: Any) -> bool:
    return isinstance(x, (float, np.floating)) and math.isnan(x)


# --------------------------------------------------------------------------- helpers

def _as_list(x: Any, what: str) -> list:
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{what} must be a sequence of items, not a single string")
    if isinstance(x, np.ndarray):
        return x.tolist()
    return list(x)


def _check_lengths(predictions: Sequence, references: Sequence) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if len(references) == 0:
        raise ValueError("nothing to evaluate: no references")


def _percent(numerator: float, denominator: float) -> float:
    return 100.0 * numerator / denominator if denominator else 0.0


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


# --------------------------------------------------------------------------- accuracy

def accuracy(predictions: Sequence, references: Sequence) -> float:
    """Percent of predictions equal to their reference (labels of any comparable kind)."""
    preds, refs = _as_list(predictions, "predictions"), _as_list(references, "references")
    _check_lengths(preds, refs)
    for side, values in (("references", refs), ("predictions", preds)):
        bad = sum(_is_nan(v) for v in values)
        if bad:
            raise Unscorable(f"{bad} of {len(values)} {side} are NaN")
    return _percent(sum(int(p == r) for p, r in zip(preds, refs)), len(refs))


# --------------------------------------------------------------------------- tagging

def _tag_sequences(seqs: Any, what: str) -> list[list[str]]:
    """Sentences of tag strings. A flat sequence of strings counts as one sentence."""
    seqs = _as_list(seqs, what)
    if seqs and isinstance(seqs[0], str):
        seqs = [seqs]
    out = []
    for sent in seqs:
        sent = _as_list(sent, what)
        for tag in sent:
            if not isinstance(tag, str) or not tag:
                raise TypeError(
                    f"{what} must hold non-empty tag strings (e.g. 'B-PER', 'NOUN'), got {tag!r}; "
                    "map label ids to names first"
                )
        out.append(sent)
    return out


def _paired_tag_sequences(predictions: Any, references: Any) -> tuple[list[list[str]], list[list[str]]]:
    preds, refs = _tag_sequences(predictions, "predictions"), _tag_sequences(references, "references")
    _check_lengths(preds, refs)
    for i, (p, r) in enumerate(zip(preds, refs)):
        if len(p) != len(r):
            raise ValueError(f"sentence {i}: {len(p)} predicted tags but {len(r)} reference tags")
    return preds, refs


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    # seqeval 0.0.12 end_of_chunk, rule for rule.
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag != "O" and prev_tag != "." and prev_type != type_


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    # seqeval 0.0.12 start_of_chunk, rule for rule.
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag != "O" and tag != "." and prev_type != type_


def get_entities(tags: Any) -> list[tuple[str, int, int]]:
    """Chunks ``(type, first, last)`` of a tag sequence, as seqeval 0.0.12 reads them.

    A list of sentences is flattened with an ``"O"`` after each sentence, so offsets run
    over the joined sequence and no chunk crosses a sentence boundary (seqeval's own
    behaviour for nested lists). The prefix is the tag's first character and the type is
    the text after its last ``-`` (the whole tag when it has none).
    """
    sents = _tag_sequences(tags, "tags")
    seq = [t for sent in sents for t in (*sent, "O")] if len(sents) != 1 else list(sents[0])
    prev_tag, prev_type, begin, chunks = "O", "", 0, []
    for i, chunk in enumerate(seq + ["O"]):
        tag, type_ = chunk[0], chunk.split("-")[-1]
        if _end_of_chunk(prev_tag, tag, prev_type, type_):
            chunks.append((prev_type, begin, i - 1))
        if _start_of_chunk(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


def _flat_with_separators(sents: list[list[str]]) -> list[str]:
    return [t for sent in sents for t in (*sent, "O")]


def span_prf(predictions: Any, references: Any) -> dict[str, float]:
    """Micro chunk precision, recall and F1 in percent (seqeval 0.0.12 semantics).

    ``predictions`` and ``references`` are sentences of tag strings (IOB2 for PAN-X, UPOS
    for UD-POS). Precision is 0 when nothing is predicted, recall 0 when there is no gold
    chunk, F1 0 when both are 0 (as seqeval).
    """
    preds, refs = _paired_tag_sequences(predictions, references)
    gold = set(get_entities([_flat_with_separators(refs)]))
    pred = set(get_entities([_flat_with_separators(preds)]))
    correct = len(gold & pred)
    p = correct / len(pred) if pred else 0.0
    r = correct / len(gold) if gold else 0.0
    return {"f1": 100.0 * _f1(p, r), "precision": 100.0 * p, "recall": 100.0 * r}


def span_f1(predictions: Any, references: Any) -> float:
    return span_prf(predictions, references)["f1"]


def span_precision(predictions: Any, references: Any) -> float:
    return span_prf(predictions, references)["precision"]


def span_recall(predictions: Any, references: Any) -> float:
    return span_prf(predictions, references)["recall"]


def token_accuracy(predictions: Any, references: Any) -> float:
    """Percent of tokens whose tag is right, over all sentences (seqeval's accuracy_score)."""
    preds, refs = _paired_tag_sequences(predictions, references)
    flat_p = [t for s in preds for t in s]
    flat_r = [t for s in refs for t in s]
    if not flat_r:
        raise ValueError("nothing to evaluate: no tokens")
    return _percent(sum(int(p == r) for p, r in zip(flat_p, flat_r)), len(flat_r))


# --------------------------------------------------------------------------- QA

_SQUAD_PUNCT = frozenset(string.punctuation)
_EN_ARTICLES = re.compile(r"\b(a|an|the)\b")

_MLQA_ARTICLES: dict[str, re.Pattern | None] = {
    "en": re.compile(r"\b(a|an|the)\b"),
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "hi": None,  # Hindi has no formal articles
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    # MLQA's pattern '\sال^|ال': the first branch can never match, so every "ال" goes.
    "ar": re.compile(r"\sال^|ال"),
    "zh": None,  # Chinese has no formal articles
}
MLQA_LANGUAGES = tuple(_MLQA_ARTICLES)
_MLQA_MIXED_SEGMENTATION = frozenset({"zh"})
_CJK = re.compile(r"[\u4e00-\u9fa5]")


@lru_cache(maxsize=1)
def _unicode_punct() -> frozenset[str]:
    """MLQA's PUNCT: every code point below sys.maxunicode in a P* category, plus ASCII punctuation.

    (Built from this Python's Unicode database, as the official script does at import.)"""
    return frozenset(
        c for c in map(chr, range(sys.maxunicode)) if unicodedata.category(c).startswith("P")
    ) | _SQUAD_PUNCT


def squad_normalize(text: str) -> str:
    """SQuAD v1.1 (and v2.0) answer normalisation: lower, drop punctuation and a/an/the, squash spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _SQUAD_PUNCT)
    return " ".join(_EN_ARTICLES.sub(" ", text).split())


def _mixed_segmentation(text: str, punct: frozenset[str]) -> list[str]:
    out, buf = [], ""
    for ch in text:
        if _CJK.search(ch) or ch in punct:
            if buf:
                out.extend(buf.split())
                buf = ""
            out.append(ch)
        else:
            buf += ch
    if buf:
        out.extend(buf.split())
    return out


def mlqa_normalize(text: str, language: str) -> str:
    """MLQA's official answer normalisation for one answer language (see module docstring)."""
    if language not in _MLQA_ARTICLES:
        raise ValueError(f"MLQA normalisation has no language {language!r}; known: {', '.join(MLQA_LANGUAGES)}")
    punct = _unicode_punct()
    text = "".join(ch for ch in text.lower() if ch not in punct)
    articles = _MLQA_ARTICLES[language]
    if articles is not None:
        text = articles.sub(" ", text)
    tokens = _mixed_segmentation(text, punct) if language in _MLQA_MIXED_SEGMENTATION else text.split()
    return " ".join(t for t in tokens if t.strip() != "")


def _token_f1(pred_tokens: list[str], gold_tokens: list[str], empty_agree: bool) -> float:
    if empty_agree and (not pred_tokens or not gold_tokens):
        return float(pred_tokens == gold_tokens)
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    return _f1(same / len(pred_tokens), same / len(gold_tokens))


def _gold_texts(ref: Any) -> list[str]:
    if isinstance(ref, str):
        return [ref]
    if isinstance(ref, Mapping):
        ref = ref["text"]
    return [str(t) for t in _as_list(ref, "answers")]


def _qa_pairs(predictions: Any, references: Any) -> list[tuple[str | None, list[str]]]:
    if isinstance(references, Mapping):
        if not isinstance(predictions, Mapping):
            raise TypeError("references keyed by question id need predictions keyed the same way")
        # Like the official scripts: questions drive the loop; extra predictions are ignored.
        # Unlike them, a question id with no prediction at all is refused (they score it 0
        # with only a printed warning); an explicit None is an unanswered question.
        missing = [qid for qid in references if qid not in predictions]
        if missing:
            raise Unscorable(f"{len(missing)} of {len(references)} questions have no prediction "
                             f"(ids {', '.join(map(str, missing[:5]))}{', ...' if len(missing) > 5 else ''})")
        pairs = [(predictions.get(qid), _gold_texts(ref)) for qid, ref in references.items()]
        if not pairs:
            raise ValueError("nothing to evaluate: no references")
        return pairs
    preds, refs = _as_list(predictions, "predictions"), _as_list(references, "references")
    _check_lengths(preds, refs)
    return [(p, _gold_texts(r)) for p, r in zip(preds, refs)]


QA_NORMALISATIONS = ("squad", "squad_v2", "mlqa")


def qa_scores(predictions: Any, references: Any, normalization: str = "squad",
              language: str | None = None) -> dict[str, float]:
    """Exact match and F1 in percent, best over each question's gold answers.

    ``predictions``: answer strings (``None`` = unanswered), in a list aligned with
    ``references`` or in a dict keyed by question id. ``references``: per question a
    list of gold answer texts, a single string, or a ``{"text": [...], ...}`` dict (the
    ``answers`` column of the QA schema); a dict keyed by question id goes with
    predictions in a dict. ``normalization``: ``"squad"`` (v1.1 script), ``"squad_v2"``
    (v2.0 script) or ``"mlqa"`` (needs ``language``).
    """
    if normalization not in QA_NORMALISATIONS:
        raise ValueError(f"unknown QA normalisation {normalization!r}; known: {', '.join(QA_NORMALISATIONS)}")
    if normalization == "mlqa":
        if language is None:
            raise ValueError("MLQA scoring needs the answer language")
        mlqa_normalize("", language)  # validates the language
        norm: Callable[[str], str] = lambda s: mlqa_normalize(s, language)  # noqa: E731
    else:
        norm = squad_normalize
    v2 = normalization == "squad_v2"
    em_sum = f1_sum = 0.0
    total = 0
    for pred, golds in _qa_pairs(predictions, references):
        if v2:
            golds = [g for g in golds if squad_normalize(g)] or [""]
        elif not golds:
            raise ValueError("a question has no gold answer (use squad_v2 scoring for unanswerable questions)")
        if pred is None:
            if not v2:  # v1.1 / MLQA scripts: counted, scores 0; v2.0 script: left out
                total += 1
            continue
        total += 1
        p_norm = norm(pred)
        g_norms = [norm(g) for g in golds]
        em_sum += max(float(p_norm == g) for g in g_norms)
        f1_sum += max(_token_f1(p_norm.split(), g.split(), v2) for g in g_norms)
    if total == 0:
        raise ValueError("nothing to evaluate: no answered questions")
    return {"exact_match": 100.0 * em_sum / total, "f1": 100.0 * f1_sum / total}


# --------------------------------------------------------------------------- retrieval

def _normalized(emb: Any, what: str) -> np.ndarray:
    x = np.array(emb, dtype=np.float32, copy=True)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{what} must be a non-empty 2-d array of row embeddings, got shape {x.shape}")
    bad = int((~np.isfinite(x)).any(axis=1).sum())
    if bad:
        raise Unscorable(f"{bad} of {x.shape[0]} {what} rows hold NaN or infinite values")
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.float32(1e-12))
    return x


def nearest_neighbors(queries: Any, candidates: Any, chunk_size: int = 1024) -> np.ndarray:
    """Index of the cosine-nearest candidate row for each query row (rows are L2-normalised here)."""
    q, c = _normalized(queries, "queries"), _normalized(candidates, "candidates")
    if q.shape[1] != c.shape[1]:
        raise ValueError(f"dimension mismatch: queries {q.shape[1]}, candidates {c.shape[1]}")
    out = np.empty(len(q), dtype=np.int64)
    for start in range(0, len(q), chunk_size):
        out[start:start + chunk_size] = (q[start:start + chunk_size] @ c.T).argmax(axis=1)
    return out


def tatoeba_predict(src_emb: Any, tgt_emb: Any) -> np.ndarray:
    """Top-1 cosine neighbour in ``tgt_emb`` of every row of ``src_emb``."""
    return nearest_neighbors(src_emb, tgt_emb)


def tatoeba_accuracy(src_emb: Any, tgt_emb: Any, gold_index: Any, *, task: str = "tatoeba",
                     language: str | None = None) -> float:
    """Percent of source rows whose cosine-nearest target row is ``gold_index[i]``.

    XTREME's direction is English queries against the other language
    (``tatoeba_accuracy(eng_emb, xx_emb, gold)``); see the module docstring. NaN or
    infinite embeddings and gold indices outside the target rows raise ``Unscorable``
    naming ``task`` and ``language``."""
    try:
        gold = np.asarray(gold_index, dtype=np.float64)
        if gold.shape != (len(src_emb),):
            raise ValueError(f"gold_index needs one target index per source row ({len(src_emb)}), got shape {gold.shape}")
        n_tgt = len(tgt_emb)
        bad = int((~np.isfinite(gold) | (gold < 0) | (gold >= n_tgt) | (gold != np.round(gold))).sum())
        if bad:
            raise Unscorable(f"{bad} of {len(gold)} gold indices are not row numbers of the {n_tgt} candidates")
        return accuracy(tatoeba_predict(src_emb, tgt_emb), gold.astype(np.int64))
    except Unscorable as err:
        raise err.at(task, language) from None


def _top_k_rows(a: np.ndarray, k: int, overwrite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Values and column indices of the k largest entries of each row, largest first
    (ties: lower index first). With ``overwrite`` the array may be clobbered."""
    n = a.shape[1]
    if k <= 8:  # k rounds of argmax: several times faster than argpartition for small k
        if not overwrite:
            a = a.copy()
        rows = np.arange(a.shape[0])
        vals = np.empty((a.shape[0], k), dtype=a.dtype)
        inds = np.empty((a.shape[0], k), dtype=np.int64)
        for j in range(k):
            inds[:, j] = a.argmax(axis=1)
            vals[:, j] = a[rows, inds[:, j]]
            a[rows, inds[:, j]] = -np.inf
        return vals, inds
    part = np.argpartition(a, n - k, axis=1)[:, n - k:] if k < n else np.broadcast_to(np.arange(n), a.shape)
    vals = np.take_along_axis(a, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    return np.take_along_axis(vals, order, axis=1), np.take_along_axis(part, order, axis=1)


def _knn_both_ways(x: np.ndarray, y: np.ndarray, k: int, chunk_size: int):
    """Top-k cosine neighbours of every x among y and of every y among x, in one pass
    over chunks of x @ y.T. Each neighbour list is sorted by decreasing similarity."""
    nx, ny = len(x), len(y)
    kx, ky = min(k, ny), min(k, nx)
    x2y_sim = np.empty((nx, kx), dtype=np.float32)
    x2y_ind = np.empty((nx, kx), dtype=np.int64)
    col_sim = np.empty((ny, 0), dtype=np.float32)
    col_ind = np.empty((ny, 0), dtype=np.int64)
    for start in range(0, nx, chunk_size):
        sims = x[start:start + chunk_size] @ y.T
        stop = start + len(sims)
        sims_t = sims.T.copy()  # a real copy: for a 1-row chunk, .T is already contiguous (a view)
        x2y_sim[start:stop], x2y_ind[start:stop] = _top_k_rows(sims, kx, overwrite=True)
        # Running top-k of every column (a y's best x): merge this chunk's best into it.
        cvals, cind = _top_k_rows(sims_t, min(ky, len(sims_t[0])), overwrite=True)
        col_sim = np.concatenate([col_sim, cvals], axis=1)
        col_ind = np.concatenate([col_ind, cind + start], axis=1)
        if col_sim.shape[1] > ky:
            col_sim, keep = _top_k_rows(col_sim, ky)
            col_ind = np.take_along_axis(col_ind, keep, axis=1)
    return x2y_sim, x2y_ind, col_sim, col_ind


_MARGINS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "ratio": lambda a, b: a / b,
    "distance": lambda a, b: a - b,
    "absolute": lambda a, b: a,
}


def _unify(texts: Sequence[str] | None, n: int, what: str) -> tuple[np.ndarray, list[int], dict[int, int] | None]:
    """xtreme's text_load_unify + unique_embeddings + read_sent2id, on in-memory texts.

    Returns (row of each unique sentence's embedding, unique index of each row, map from
    unique index to the row whose id it takes or None = all rows keep their own id).
    Identical sentences share one embedding (the last occurrence's, as xtreme); a sentence
    that occurs more than once (after stripping) gets no id, so its pairs are dropped."""
    if texts is None:
        return np.arange(n), list(range(n)), None
    texts = list(texts)
    if len(texts) != n:
        raise ValueError(f"{len(texts)} {what} texts for {n} embeddings")
    first: dict[str, int] = {}
    inds = [first.setdefault(t, len(first)) for t in texts]
    last = {u: row for row, u in enumerate(inds)}
    rows = np.array([last[u] for u in range(len(first))], dtype=np.int64)
    counts = Counter(t.strip() for t in texts)
    id_row = {}
    for row, t in enumerate(texts):
        if counts[t.strip()] == 1:
            id_row[inds[row]] = row
    return rows, inds, id_row


def bucc_mine(src_emb: Any, tgt_emb: Any, src_ids: Sequence[str], tgt_ids: Sequence[str], *,
              k: int = 4, margin: str = "ratio", src_texts: Sequence[str] | None = None,
              tgt_texts: Sequence[str] | None = None, min_score: float = 0.0,
              chunk_size: int = 1024) -> dict[tuple[str, str], float]:
    """Candidate pairs ``{(src_id, tgt_id): margin score}``, as xtreme's ``mine_bitext``
    (mode 'mine', retrieval 'max') followed by ``read_candidate2score``.

    Every source row's best target by margin score and every target row's best source
    form the candidates; they are taken greedily by decreasing score so that each
    sentence is used once, and kept if the score is above ``min_score`` (xtreme's
    ``threshold=0``). The margin of a pair is ``cos(x, y) / ((mean_k(x) + mean_k(y)) / 2)``
    (``ratio``), with mean_k the mean cosine of a sentence's k nearest neighbours on the
    other side. Given the sentence texts, identical sentences are merged and sentences
    that occur more than once get no pair, as xtreme does through its text files.
    """
    if margin not in _MARGINS:
        raise ValueError(f"unknown margin {margin!r}; known: {', '.join(_MARGINS)}")
    if k < 1:
        raise ValueError("k must be at least 1")
    x_all, y_all = _normalized(src_emb, "src_emb"), _normalized(tgt_emb, "tgt_emb")
    if x_all.shape[1] != y_all.shape[1]:
        raise ValueError(f"dimension mismatch: src {x_all.shape[1]}, tgt {y_all.shape[1]}")
    src_ids, tgt_ids = [str(i) for i in src_ids], [str(i) for i in tgt_ids]
    if len(src_ids) != len(x_all) or len(tgt_ids) != len(y_all):
        raise ValueError("need one id per embedding row on each side")
    src_rows, _, src_id_row = _unify(src_texts, len(x_all), "source")
    tgt_rows, _, tgt_id_row = _unify(tgt_texts, len(y_all), "target")
    x, y = x_all[src_rows], y_all[tgt_rows]

    x2y_sim, x2y_ind, y2x_sim, y2x_ind = _knn_both_ways(x, y, k, chunk_size)
    x2y_mean = x2y_sim.mean(axis=1, dtype=np.float64)
    y2x_mean = y2x_sim.mean(axis=1, dtype=np.float64)
    fn = _MARGINS[margin]
    fwd = fn(x2y_sim.astype(np.float64), (x2y_mean[:, None] + y2x_mean[x2y_ind]) / 2)
    bwd = fn(y2x_sim.astype(np.float64), (y2x_mean[:, None] + x2y_mean[y2x_ind]) / 2)
    fwd_arg, bwd_arg = fwd.argmax(axis=1), bwd.argmax(axis=1)
    fwd_best = x2y_ind[np.arange(len(x)), fwd_arg]
    bwd_best = y2x_ind[np.arange(len(y)), bwd_arg]
    pair_src = np.concatenate([np.arange(len(x)), bwd_best])
    pair_tgt = np.concatenate([fwd_best, np.arange(len(y))])
    scores = np.concatenate([fwd[np.arange(len(x)), fwd_arg], bwd[np.arange(len(y)), bwd_arg]])

    seen_src: set[int] = set()
    seen_tgt: set[int] = set()
    candidates: dict[tuple[str, str], float] = {}
    for i in np.argsort(-scores, kind="stable"):
        s, t = int(pair_src[i]), int(pair_tgt[i])
        if s in seen_src or t in seen_tgt:
            continue
        seen_src.add(s)
        seen_tgt.add(t)
        score = float(scores[i])
        if not score > min_score:
            continue
        if src_id_row is not None:
            if s not in src_id_row:
                continue
            s_row = src_id_row[s]
        else:
            s_row = s
        if tgt_id_row is not None:
            if t not in tgt_id_row:
                continue
            t_row = tgt_id_row[t]
        else:
            t_row = t
        key = (src_ids[s_row], tgt_ids[t_row])
        candidates[key] = max(score, candidates.get(key, score))
    return candidates


def _gold_pair_set(gold_pairs: Iterable) -> set[tuple[str, str]]:
    out = set()
    for pair in gold_pairs:
        if isinstance(pair, str):
            pair = pair.rstrip("\n").split("\t")
        pair = tuple(str(p).strip() for p in pair)
        if len(pair) != 2:
            raise ValueError(f"a gold pair needs a source and a target id, got {pair!r}")
        out.add(pair)
    return out


def _candidate_items(candidates: Any) -> list[tuple[tuple[str, str], float]]:
    if isinstance(candidates, Mapping):
        items = [((str(k[0]), str(k[1])), float(v)) for k, v in candidates.items()]
    else:
        items = []
        for c in candidates:
            if len(c) != 3:
                raise ValueError(f"a scored candidate is (src_id, tgt_id, score), got {c!r}")
            items.append(((str(c[0]), str(c[1])), float(c[2])))
    best: dict[tuple[str, str], float] = {}
    for key, score in items:
        best[key] = max(score, best.get(key, score))
    return list(best.items())


def bucc_optimize_threshold(candidates: Any, gold_pairs: Iterable) -> float:
    """The score threshold that maximises F1 on ``gold_pairs`` (xtreme's ``bucc_optimize``).

    Candidates are ranked by decreasing score; the cut with the best F1 (the first one on
    ties) sets the threshold halfway between its last score and the next. When the best
    cut keeps every candidate (where xtreme would index past its list) the threshold is
    the lowest score. 0.0 when no candidate is correct."""
    items = sorted(_candidate_items(candidates), key=lambda kv: -kv[1])
    gold = _gold_pair_set(gold_pairs)
    if not gold:
        raise ValueError("nothing to evaluate: no gold pairs")
    extracted = correct = 0
    threshold, best_f1 = 0.0, 0.0
    for i, (pair, score) in enumerate(items):
        extracted += 1
        correct += pair in gold
        if correct:
            f1 = _f1(correct / extracted, correct / len(gold))
            if f1 > best_f1:
                best_f1 = f1
                threshold = (score + items[i + 1][1]) / 2 if i + 1 < len(items) else score
    return threshold


def bucc_pair_prf(predicted_pairs: Iterable, gold_pairs: Iterable) -> dict[str, float]:
    """Precision, recall, F1 (percent) of a set of extracted pairs (xtreme's ``bucc_f1``).

    Pairs are ``(src_id, tgt_id)`` tuples or ``"src_id\\ttgt_id"`` strings."""
    pred, gold = _gold_pair_set(predicted_pairs), _gold_pair_set(gold_pairs)
    if not gold:
        raise ValueError("nothing to evaluate: no gold pairs")
    correct = len(pred & gold)
    if correct == 0:
        return {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    p, r = correct / len(pred), correct / len(gold)
    return {"f1": 100.0 * _f1(p, r), "precision": 100.0 * p, "recall": 100.0 * r}


def bucc_scores(candidates: Any, gold_pairs: Iterable, threshold: float | None = None) -> dict[str, float]:
    """F1, precision, recall (percent) of the candidates scoring at least ``threshold``.

    ``threshold=None`` fits it on ``gold_pairs`` (xtreme's dev protocol; an oracle when
    the same pairs are scored). Returns the threshold used beside the scores."""
    gold = _gold_pair_set(gold_pairs)
    if threshold is None:
        threshold = bucc_optimize_threshold(candidates, gold)
    kept = [pair for pair, score in _candidate_items(candidates) if score >= threshold]
    return {**bucc_pair_prf(kept, gold), "threshold": float(threshold)}


def bucc_mine_and_score(src_emb: Any, tgt_emb: Any, src_ids: Sequence[str], tgt_ids: Sequence[str],
                        gold_pairs: Iterable, *, threshold: float | None = None, k: int = 4,
                        margin: str = "ratio", src_texts: Sequence[str] | None = None,
                        tgt_texts: Sequence[str] | None = None) -> dict[str, float]:
    """Mine candidates from embeddings and score them: ``{f1, precision, recall, threshold}``.

    With ``threshold=None`` the F1-optimal threshold on ``gold_pairs`` is used (oracle on
    the offline zh-en dev set; see the module docstring)."""
    candidates = bucc_mine(src_emb, tgt_emb, src_ids, tgt_ids, k=k, margin=margin,
                           src_texts=src_texts, tgt_texts=tgt_texts)
    return bucc_scores(candidates, gold_pairs, threshold)


def _bucc_metric(key: str) -> Callable[..., float]:
    def fn(predictions, references, language=None, threshold=None):
        items = predictions if isinstance(predictions, Mapping) else list(predictions)
        if isinstance(items, Mapping) or all(not isinstance(c, str) and len(c) == 3 for c in items):
            return bucc_scores(items, references, threshold)[key]
        if key == "threshold" or threshold is not None:
            raise ValueError("a BUCC threshold needs scored candidates (src_id, tgt_id, score)")
        return bucc_pair_prf(items, references)[key]
    return fn


# --------------------------------------------------------------------------- the table

@dataclass(frozen=True)
class MetricSpec:
    """One metric: ``fn(predictions, references, language, **options) -> float``.

    ``key`` is unique in :data:`METRICS`; ``name`` is what results and metrics.jsonl call
    it (``"f1"`` for PAN-X span F1 and for SQuAD F1 alike). ``higher_is_better`` is None
    for values that are not scores (the BUCC threshold)."""
    key: str
    name: str
    fn: Callable[..., float]
    higher_is_better: bool | None
    inputs: str
    options: tuple[str, ...] = ()


_LABELS = "predictions: predicted labels; references: gold labels (any comparable values, one per example)"
_TAGS = "predictions, references: per sentence a list of tag strings (IOB2 for PAN-X, UPOS for UD-POS)"
_QA = ("predictions: answer strings (None = unanswered), a list or a dict by question id; references: per question "
       "the gold answer texts (list, str or {'text': [...]}), aligned or in a dict by question id")
_BUCC = ("predictions: scored candidates {(src_id, tgt_id): score} or [(src_id, tgt_id, score)] from bucc_mine, or "
         "extracted (src_id, tgt_id) pairs; references: gold (src_id, tgt_id) pairs or 'src\\ttgt' strings")


def _plain(f: Callable[[Any, Any], float]) -> Callable[..., float]:
    def fn(predictions, references, language=None):
        return f(predictions, references)
    fn.__name__ = f.__name__
    return fn


def _qa_metric(normalization: str, key: str) -> Callable[..., float]:
    def fn(predictions, references, language=None):
        lang = language if normalization == "mlqa" else None
        return qa_scores(predictions, references, normalization, lang)[key]
    fn.__name__ = f"{normalization}_{key}"
    return fn


METRICS: dict[str, MetricSpec] = {s.key: s for s in [
    MetricSpec("accuracy", "accuracy", _plain(accuracy), True, _LABELS),
    MetricSpec("span_f1", "f1", _plain(span_f1), True, _TAGS),
    MetricSpec("span_precision", "precision", _plain(span_precision), True, _TAGS),
    MetricSpec("span_recall", "recall", _plain(span_recall), True, _TAGS),
    MetricSpec("token_accuracy", "accuracy", _plain(token_accuracy), True, _TAGS),
    MetricSpec("squad_exact_match", "exact_match", _qa_metric("squad", "exact_match"), True, _QA),
    MetricSpec("squad_f1", "f1", _qa_metric("squad", "f1"), True, _QA),
    MetricSpec("squad_v2_exact_match", "exact_match", _qa_metric("squad_v2", "exact_match"), True, _QA),
    MetricSpec("squad_v2_f1", "f1", _qa_metric("squad_v2", "f1"), True, _QA),
    MetricSpec("mlqa_exact_match", "exact_match", _qa_metric("mlqa", "exact_match"), True,
               _QA + "; language: the answer language (" + ", ".join(MLQA_LANGUAGES) + ")"),
    MetricSpec("mlqa_f1", "f1", _qa_metric("mlqa", "f1"), True,
               _QA + "; language: the answer language (" + ", ".join(MLQA_LANGUAGES) + ")"),
    MetricSpec("bucc_f1", "f1", _bucc_metric("f1"), True, _BUCC, ("threshold",)),
    MetricSpec("bucc_precision", "precision", _bucc_metric("precision"), True, _BUCC, ("threshold",)),
    MetricSpec("bucc_recall", "recall", _bucc_metric("recall"), True, _BUCC, ("threshold",)),
    MetricSpec("bucc_threshold", "threshold", _bucc_metric("threshold"), None, _BUCC, ("threshold",)),
]}

_ACCURACY_TASKS = ("xnli", "pawsx", "xcopa", "anli", "americasnli", "myxnli", "siqa", "cosmosqa", "mnli", "qqp",
                   "hellaswag", "commonsenseqa")

TASK_METRICS: dict[str, tuple[str, ...]] = {
    **{task: ("accuracy",) for task in _ACCURACY_TASKS},
    "udpos": ("span_f1", "token_accuracy"),
    "panx": ("span_f1",),
    "xquad": ("squad_exact_match", "squad_f1"),
    "tydiqa": ("squad_exact_match", "squad_f1"),
    "squad": ("squad_exact_match", "squad_f1"),
    "squad_v2": ("squad_v2_exact_match", "squad_v2_f1"),
    "mlqa": ("mlqa_exact_match", "mlqa_f1"),
    # Tatoeba: predictions are the retrieved indices (tatoeba_predict), references the gold ones.
    "tatoeba": ("accuracy",),
    "bucc2018": ("bucc_f1", "bucc_precision", "bucc_recall"),
}

# The headline metric of each task, by reported name (XTREME tables: F1 for tagging, QA, BUCC).
PRIMARY_METRIC: dict[str, str] = {
    task: ("f1" if any(METRICS[k].name == "f1" for k in keys) else "accuracy")
    for task, keys in TASK_METRICS.items()
}


def compute(task: str, language: str | None, predictions: Any, references: Any, *,
            metrics: Iterable[str] | None = None, **options: Any) -> dict[str, float]:
    """Score one task in one language: ``{reported metric name: value}``.

    ``metrics`` overrides the task's default metrics (keys of :data:`METRICS`);
    ``options`` go to the metrics that accept them (``threshold=`` for BUCC)."""
    if task not in TASK_METRICS:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(sorted(TASK_METRICS))}")
    keys = tuple(TASK_METRICS[task] if metrics is None else metrics)
    unknown = [k for k in keys if k not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; known metrics: {', '.join(sorted(METRICS))}")
    specs = [METRICS[k] for k in keys]
    allowed = {o for s in specs for o in s.options}
    bad = sorted(set(options) - allowed)
    if bad:
        raise ValueError(f"unknown option {bad[0]!r} for metrics {', '.join(keys)}; accepted: {sorted(allowed) or 'none'}")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"metrics {', '.join(keys)} report clashing names {names}")
    out = {}
    for spec in specs:
        opts = {o: options[o] for o in spec.options if o in options}
        try:
            out[spec.name] = float(spec.fn(predictions, references, language, **opts))
        except Unscorable as err:
            raise err.at(task, language) from None
    return out


_ROW_KEYS = ("run_id", "stage", "task", "language", "split", "metric", "value", "n_examples", "seen")


def metric_rows(run_id: str, stage: str, task: str, language: str, split: str, scores: Mapping[str, float],
                n_examples: int, seen: bool, **extra: Any) -> list[dict]:
    """Rows for metrics.jsonl, one per metric in ``scores`` (in its order).

    Keys: run_id, stage, task, language, split, metric, value, n_examples, seen, then the
    ``extra`` keys as given. Values must be finite numbers."""
    clash = sorted(set(extra) & set(_ROW_KEYS))
    if clash:
        raise ValueError(f"extra keys {clash} would overwrite row fields {list(_ROW_KEYS)}")
    if not scores:
        raise ValueError("no scores to write")
    rows = []
    for metric, value in scores.items():
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"metric {metric!r} of {task}/{language} is not finite: {value}")
        rows.append({
            "run_id": run_id, "stage": stage, "task": task, "language": language, "split": split,
            "metric": str(metric), "value": value, "n_examples": int(n_examples), "seen": bool(seen),
            **extra,
        })
    return rows
