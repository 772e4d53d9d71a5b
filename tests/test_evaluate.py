"""Tests of xfer_nb.evaluate.

Expected values come from three kinds of source, named at each test:
* hand computation (the arithmetic is in the test);
* published outputs of reference tools (conlleval's documented result on the CoNLL-2000
  chunking example that seqeval's own tests use);
* the official / XTREME scripts (SQuAD v1.1 and v2.0 evaluate, MLQA mlqa_evaluation_v1.py,
  seqeval 0.0.12 get_entities / f1_score, xtreme third_party/utils_retrieve.py mine_bitext +
  bucc_eval + similarity_search), transcribed into a scratch folder outside this repository
  and run there on the inputs below; their outputs are pasted here as literals.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from xfer_nb import evaluate as E

# --------------------------------------------------------------------------- accuracy


def test_accuracy_hand():
    assert E.accuracy([0, 1, 2, 1], [0, 1, 1, 1]) == 75.0
    assert E.accuracy(np.array([1, 0]), np.array([1, 1])) == 50.0
    assert E.accuracy(["entailment", "neutral"], ["entailment", "neutral"]) == 100.0


@pytest.mark.parametrize("preds, refs", [([1, 2], [1]), ([], [])])
def test_accuracy_rejects_bad_lengths(preds, refs):
    with pytest.raises(ValueError):
        E.accuracy(preds, refs)


# --------------------------------------------------------------------------- tagging

def test_seqeval_docstring_examples():
    # seqeval's own docstrings: get_entities, and f1/precision/recall 0.50, accuracy 0.80.
    assert E.get_entities(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3)]
    assert E.get_entities(["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O", "B-PER", "I-PER"]) == [
        ("MISC", 3, 5), ("PER", 7, 8)]
    y_true = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    y_pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    assert E.span_prf(y_pred, y_true) == pytest.approx({"f1": 50.0, "precision": 50.0, "recall": 50.0})
    assert E.token_accuracy(y_pred, y_true) == pytest.approx(80.0)


def test_iob2_edge_cases_hand():
    # An I- after O starts an entity; a type change inside a run ends one and starts another.
    assert E.get_entities(["O", "I-PER", "I-PER", "O"]) == [("PER", 1, 2)]
    assert E.get_entities(["B-PER", "I-LOC", "I-LOC"]) == [("PER", 0, 0), ("LOC", 1, 2)]
    assert E.get_entities(["B-ORG", "B-ORG", "I-ORG"]) == [("ORG", 0, 0), ("ORG", 1, 2)]
    # No entity crosses a sentence boundary: sentences are joined with an O.
    assert E.get_entities([["B-PER"], ["I-PER"]]) == [("PER", 0, 0), ("PER", 2, 2)]
    # gold: PER(0,1) LOC(3,3); pred: PER(0,0) [wrong end], LOC(3,3), ORG(4,4).
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O"]]
    pred = [["B-PER", "O", "O", "I-LOC", "B-ORG"]]
    # correct 1; precision 1/3, recall 1/2, F1 = 2*(1/3)(1/2)/(5/6) = 0.4
    assert E.span_prf(pred, gold) == pytest.approx({"f1": 40.0, "precision": 100 / 3, "recall": 50.0})


def test_span_scores_when_nothing_predicted_or_no_gold():
    assert E.span_prf([["O", "O"]], [["B-PER", "O"]]) == {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    assert E.span_prf([["B-PER", "O"]], [["O", "O"]]) == {"f1": 0.0, "precision": 0.0, "recall": 0.0}


# The CoNLL-2000 chunking example used by seqeval's tests (tests/data/ground_truth.txt in
# chakki-works/seqeval, from https://www.clips.uantwerpen.be/conll2000/chunking/output.html):
# tag columns only, one sentence per line, each token "gold/predicted".
CONLL2000_TAGS = """
B-NP/I-NP I-NP/I-NP I-NP/I-NP B-NP/B-NP I-NP/I-NP I-NP/I-NP B-VP/B-VP B-NP/B-NP B-VP/B-VP B-NP/B-NP I-NP/I-NP I-NP/I-NP B-VP/B-VP B-NP/B-NP I-NP/I-NP B-PP/B-PP B-NP/I-NP I-NP/I-NP B-VP/B-PP I-VP/I-VP B-NP/I-NP I-NP/I-NP B-PP/B-PP B-NP/I-NP B-NP/B-NP I-NP/I-NP I-NP/I-NP O/O
B-NP/I-NP B-VP/B-VP B-NP/B-NP I-NP/I-NP B-VP/B-VP B-SBAR/B-PP B-NP/B-NP B-VP/B-PP I-VP/I-VP B-NP/I-NP I-NP/B-NP I-NP/I-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP O/O
B-NP/B-NP B-VP/B-VP O/O B-PP/B-PP B-NP/B-NP I-NP/I-NP O/O B-NP/B-NP I-NP/I-NP B-NP/B-NP I-NP/B-NP I-NP/I-NP I-NP/I-NP O/O B-NP/B-NP I-NP/B-NP I-NP/I-NP O/O B-NP/I-NP I-NP/I-NP O/O B-NP/I-NP I-NP/I-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP O/O B-NP/B-NP I-NP/I-NP I-NP/I-NP I-NP/I-NP O/O
B-PP/B-PP B-NP/B-NP I-NP/I-NP I-NP/I-NP O/O B-NP/I-NP B-VP/B-VP O/O B-NP/B-NP B-VP/B-VP I-VP/B-ADVP I-VP/B-VP B-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP B-PP/B-PP B-NP/I-NP O/O
B-NP/I-NP O/O B-VP/B-VP B-PP/B-PP B-NP/B-NP I-NP/I-NP O/O B-NP/B-NP O/O B-VP/B-VP B-NP/B-NP I-NP/I-NP I-NP/O I-NP/I-NP I-NP/O I-NP/I-NP I-NP/O I-NP/I-NP I-NP/I-NP O/O
B-NP/B-NP I-NP/I-NP I-NP/I-NP B-VP/B-VP I-VP/I-VP B-PP/B-PP B-NP/B-NP I-NP/I-NP I-NP/I-NP B-NP/B-NP I-NP/I-NP O/O B-VP/B-VP B-NP/B-NP I-NP/I-NP B-VP/B-VP B-PP/B-PP B-NP/B-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP B-NP/B-NP I-NP/B-NP O/O
B-NP/B-NP I-NP/I-NP O/O B-NP/B-NP I-NP/I-NP B-ADJP/I-NP O/O B-VP/B-VP B-PP/B-PP B-NP/I-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP I-NP/I-NP O/O
B-PP/B-PP B-NP/B-NP O/O B-NP/B-NP B-VP/B-VP B-NP/B-NP I-NP/I-NP B-PP/B-PP B-NP/I-NP I-NP/B-NP B-PP/B-PP B-NP/I-NP I-NP/I-NP O/O B-NP/B-NP I-NP/I-NP I-NP/I-NP I-NP/I-NP O/O
B-NP/I-NP I-NP/I-NP I-NP/I-NP I-NP/I-NP O/O
B-NP/I-NP I-NP/I-NP I-NP/I-NP O/O B-NP/B-NP I-NP/I-NP B-ADJP/I-NP O/O B-VP/B-VP I-VP/I-VP B-NP/I-NP O/O B-NP/B-NP I-NP/I-NP I-NP/I-NP B-PP/B-PP B-NP/I-NP I-NP/I-NP O/O B-NP/B-NP I-NP/I-NP I-NP/O I-NP/I-NP I-NP/O I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/B-NP I-NP/I-NP I-NP/I-NP I-NP/I-NP I-NP/I-NP O/O
B-NP/I-NP O/O B-NP/B-NP B-VP/B-VP B-NP/I-NP B-PP/B-PP B-NP/I-NP I-NP/I-NP O/O B-VP/B-VP B-NP/B-NP I-NP/I-NP B-VP/B-VP I-VP/I-NP I-VP/B-VP O/O
B-NP/B-NP I-NP/I-NP B-VP/B-VP I-VP/I-VP B-NP/I-NP I-NP/I-NP I-NP/I-NP B-PP/B-PP B-NP/I-NP O/O
B-PP/B-PP B-NP/B-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP I-NP/I-NP I-NP/I-NP I-NP/O I-NP/I-NP I-NP/I-NP O/O B-NP/B-NP I-NP/I-NP B-VP/B-VP B-NP/I-NP B-PP/B-PP B-NP/I-NP O/O B-NP/I-NP I-NP/I-NP O/O
B-NP/B-NP I-NP/I-NP B-VP/B-VP I-VP/I-VP I-VP/I-VP B-PP/B-PP B-NP/I-NP I-NP/I-NP O/O B-NP/B-NP O/O B-NP/B-NP B-VP/B-VP B-PP/B-PP B-NP/B-NP I-NP/I-NP I-NP/I-NP I-NP/I-NP O/O
B-NP/B-NP B-VP/B-VP B-ADJP/B-PP I-ADJP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP I-NP/I-NP O/O
B-NP/B-NP I-NP/B-NP I-NP/I-NP O/O B-VP/B-VP B-NP/B-VP I-NP/I-NP I-NP/I-NP I-NP/I-NP I-NP/I-NP O/O B-VP/B-VP B-NP/B-NP I-NP/B-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP I-NP/I-NP O/O O/O B-NP/B-NP I-NP/I-NP B-NP/B-NP I-NP/I-NP O/O
B-NP/B-NP I-NP/I-NP B-ADVP/B-ADVP O/O B-NP/B-NP I-NP/I-NP I-NP/I-NP B-VP/B-VP B-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/B-NP I-NP/I-NP O/O O/O B-NP/B-NP I-NP/I-NP B-NP/B-NP I-NP/I-NP O/O
B-PP/B-PP B-NP/B-NP I-NP/I-NP I-NP/I-NP O/O B-NP/B-NP B-VP/B-VP B-NP/B-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP I-NP/I-NP O/O O/O B-NP/B-NP I-NP/I-NP B-NP/B-NP I-NP/I-NP O/O B-PP/B-PP B-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP I-NP/I-NP O/O O/O B-NP/B-NP I-NP/I-NP B-NP/B-NP I-NP/I-NP O/O B-PP/B-PP B-NP/B-NP I-NP/I-NP I-NP/I-NP O/O
B-NP/B-NP I-NP/B-NP B-VP/B-VP B-NP/B-NP B-VP/B-VP B-NP/B-NP I-NP/I-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP I-NP/I-NP B-PP/B-PP B-VP/I-VP B-NP/B-NP I-NP/I-NP I-NP/I-NP O/O B-VP/B-VP B-NP/B-NP I-NP/I-NP I-NP/I-NP I-NP/O I-NP/I-NP I-NP/I-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/B-NP I-NP/I-NP O/O
B-PP/B-PP B-NP/B-NP I-NP/I-NP I-NP/B-NP O/O B-NP/B-NP B-VP/B-VP O/O B-NP/B-NP B-VP/B-VP B-NP/I-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP O/O
B-NP/B-NP I-NP/I-NP B-VP/B-VP B-NP/B-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP B-PP/B-PP B-NP/I-NP I-NP/I-NP I-NP/I-NP I-NP/I-NP O/O B-VP/B-VP B-NP/B-NP I-NP/B-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP O/O
B-PP/B-PP B-NP/B-NP B-PP/B-PP B-NP/B-NP I-NP/B-VP I-NP/I-NP O/O B-NP/B-NP I-NP/I-NP I-NP/I-NP B-VP/B-VP B-NP/B-NP I-NP/I-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP I-NP/I-NP B-VP/B-VP B-NP/I-NP I-NP/O I-NP/B-NP I-NP/I-NP B-PP/B-PP B-NP/I-NP I-NP/I-NP O/O B-NP/B-NP I-NP/B-VP O/O O/O B-NP/B-NP B-VP/B-VP B-NP/B-NP I-NP/B-NP I-NP/I-NP I-NP/I-NP I-NP/I-NP B-PP/B-PP B-NP/I-VP I-NP/I-NP I-NP/I-NP I-NP/I-NP O/O B-VP/B-VP B-NP/B-NP I-NP/B-NP B-SBAR/B-SBAR B-NP/B-NP I-NP/I-NP B-VP/B-VP I-VP/B-VP B-NP/B-NP I-NP/I-NP O/O
B-NP/I-NP B-VP/B-VP O/I-VP B-NP/B-NP I-NP/B-NP I-NP/I-NP I-NP/B-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP I-NP/I-NP O/O
B-VP/B-VP B-PP/B-PP B-NP/B-NP B-VP/B-VP B-PP/B-PP B-NP/B-NP B-NP/B-NP I-NP/B-NP O/O B-NP/B-NP I-NP/I-NP I-NP/I-NP O/O O/O B-NP/B-NP I-NP/B-NP I-NP/I-NP I-NP/I-NP O/O B-NP/B-NP I-NP/I-NP I-NP/I-NP O/O
B-PP/B-PP B-NP/B-NP I-NP/I-NP B-NP/B-NP I-NP/I-NP I-NP/I-NP I-NP/I-NP B-VP/B-VP B-NP/B-NP I-NP/I-NP B-VP/B-VP O/O B-NP/I-NP I-NP/I-NP I-NP/I-NP B-VP/B-VP B-NP/B-NP I-NP/I-NP O/O B-NP/B-NP I-NP/I-NP I-NP/O I-NP/I-NP B-VP/B-VP B-NP/B-NP I-NP/I-NP I-NP/I-NP I-NP/I-NP B-VP/B-VP I-VP/B-PP I-VP/B-VP B-SBAR/B-PP B-NP/I-NP B-PP/B-PP B-NP/B-NP O/O B-NP/I-NP B-NP/B-NP I-NP/I-NP I-NP/I-NP O/O B-VP/B-VP B-NP/B-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP I-NP/I-NP B-VP/B-PP I-VP/I-VP B-PP/B-PP B-NP/B-NP I-NP/I-NP O/O
O/B-PP B-NP/B-NP B-NP/B-NP I-NP/I-NP O/O B-NP/B-NP B-VP/B-VP I-VP/I-VP B-NP/B-NP I-NP/B-NP I-NP/I-NP B-NP/I-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP I-NP/I-NP O/O B-VP/B-VP B-PP/B-PP B-NP/B-NP B-NP/B-NP B-VP/B-VP I-VP/I-VP I-VP/I-VP O/I-VP B-NP/B-NP I-NP/I-NP I-NP/O I-NP/I-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP B-VP/I-VP B-ADVP/B-PP B-PP/B-PP B-NP/B-NP I-NP/I-NP B-NP/B-NP I-NP/I-NP O/O
B-ADVP/B-ADVP B-NP/I-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP B-VP/B-VP B-NP/B-NP I-NP/I-NP O/O B-ADVP/B-ADVP O/B-VP B-NP/B-NP B-NP/B-NP I-NP/I-NP O/O
B-ADVP/B-SBAR B-SBAR/B-SBAR B-NP/B-NP I-NP/I-NP B-VP/B-VP B-NP/B-NP I-NP/I-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP B-NP/B-NP I-NP/I-NP O/O B-NP/B-NP I-NP/B-NP I-NP/I-NP B-VP/B-VP I-VP/B-ADVP I-VP/I-VP B-NP/B-NP I-NP/B-NP I-NP/I-NP I-NP/I-NP B-NP/B-NP B-SBAR/B-PP B-NP/B-NP B-VP/B-VP I-VP/B-PP I-VP/I-VP B-PP/B-PP B-NP/B-NP I-NP/I-NP I-NP/I-NP O/O
B-NP/B-NP I-NP/I-NP B-VP/B-VP B-NP/I-NP I-NP/B-NP I-NP/I-NP O/O B-VP/B-VP B-NP/I-NP B-VP/B-PP I-VP/I-VP B-NP/B-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP B-NP/B-NP O/O
B-PP/B-PP B-NP/B-NP I-NP/B-NP I-NP/I-NP I-NP/I-NP O/O B-NP/B-NP B-VP/B-VP B-NP/B-NP I-NP/B-NP I-NP/I-NP I-NP/I-NP O/O
B-PP/B-PP B-NP/B-NP B-NP/B-NP I-NP/I-NP B-PP/B-PP B-NP/I-NP O/O B-NP/B-NP B-VP/B-VP B-ADJP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP I-NP/B-NP I-NP/I-NP I-NP/I-NP O/O
B-PP/B-PP B-NP/B-NP O/O B-NP/B-NP I-NP/I-NP O/O B-NP/B-NP I-NP/I-NP B-ADJP/I-NP O/O B-VP/B-VP B-NP/B-NP I-NP/I-NP O/O
B-NP/B-NP B-VP/B-VP B-NP/B-NP I-NP/B-NP I-NP/B-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP O/O B-NP/B-NP I-NP/I-NP B-PP/B-PP B-NP/I-NP I-NP/I-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/B-NP I-NP/I-NP I-NP/I-NP O/O O/O B-NP/B-NP B-VP/B-VP B-NP/B-NP B-NP/B-NP I-NP/B-NP I-NP/I-NP I-NP/I-NP I-NP/I-NP B-ADVP/B-ADVP B-NP/B-NP B-VP/B-VP B-NP/B-NP O/O
B-NP/B-NP I-NP/I-NP I-NP/I-NP B-VP/B-VP B-NP/B-NP I-NP/I-NP O/O B-PP/B-PP B-NP/B-NP I-NP/B-NP I-NP/I-NP I-NP/I-NP O/O
B-NP/B-NP I-NP/I-NP I-NP/I-NP I-NP/B-NP I-NP/I-NP B-VP/B-VP I-VP/I-VP I-VP/I-VP B-NP/I-NP B-ADVP/I-ADJP O/O B-PP/B-PP B-ADJP/I-NP B-NP/B-NP I-NP/I-NP I-NP/I-NP O/O B-VP/B-PP I-VP/I-VP B-ADVP/B-ADVP B-NP/B-NP I-NP/I-NP B-PP/B-PP B-NP/I-NP O/O
B-NP/I-NP B-VP/B-VP B-NP/B-NP B-NP/B-NP I-NP/B-NP I-NP/I-NP I-NP/I-NP B-VP/B-PP I-VP/I-VP B-NP/B-NP B-PP/B-ADVP B-PP/B-PP B-NP/B-NP I-NP/I-NP O/O O/O B-NP/B-NP B-VP/B-VP I-VP/I-VP B-NP/B-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/I-NP B-NP/B-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/B-NP I-NP/I-NP I-NP/I-NP O/O
B-NP/B-NP I-NP/I-NP B-VP/B-VP B-NP/I-NP I-NP/B-NP I-NP/I-NP O/O B-VP/B-VP B-NP/I-NP B-VP/B-PP I-VP/I-VP B-NP/B-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/B-NP B-NP/B-NP O/O
B-NP/B-NP B-VP/B-VP B-PP/B-PP B-NP/B-NP I-NP/I-NP I-NP/B-NP I-NP/I-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP I-NP/B-NP I-NP/I-NP I-NP/I-NP O/O O/O B-NP/B-ADVP I-NP/B-NP I-NP/I-NP I-NP/I-NP B-PP/B-PP B-NP/B-NP B-NP/B-NP I-NP/I-NP O/O
B-PP/B-PP B-NP/B-NP I-NP/I-NP I-NP/B-NP I-NP/I-NP I-NP/I-NP B-NP/B-NP I-NP/B-NP I-NP/I-NP B-VP/B-VP I-VP/I-VP I-VP/B-PP I-VP/I-VP B-PP/B-PP B-NP/B-NP I-NP/I-NP O/O B-NP/B-NP B-VP/B-VP I-VP/B-PP I-VP/I-VP B-PP/B-PP B-NP/B-NP I-NP/I-NP B-NP/B-ADVP I-NP/B-NP I-NP/I-NP I-NP/I-NP O/O B-VP/B-VP B-NP/B-NP B-PP/B-PP B-NP/B-NP I-NP/B-NP B-PP/B-PP B-NP/I-NP B-VP/B-VP B-VP/B-PP I-VP/I-VP B-NP/I-NP I-NP/I-NP B-SBAR/B-ADVP B-NP/B-NP I-NP/I-NP B-VP/B-VP I-VP/I-VP B-NP/B-NP I-NP/I-NP O/O
B-NP/I-NP B-NP/B-NP I-NP/I-NP B-VP/B-VP B-NP/B-NP O/O O/O B-NP/B-NP I-NP/I-NP O/O B-NP/I-NP I-NP/I-NP B-PP/B-PP
"""


def _conll():
    sents = [line.split() for line in CONLL2000_TAGS.strip().splitlines()]
    gold = [[tok.split("/")[0] for tok in s] for s in sents]
    pred = [[tok.split("/")[1] for tok in s] for s in sents]
    return gold, pred


def test_conll2000_example_matches_conlleval():
    # conlleval's documented output on this file: "processed 961 tokens with 459 phrases;
    # found: 539 phrases; correct: 371. accuracy: 84.08%; precision: 68.83%; recall: 80.83%;
    # FB1: 74.35", and per type ADJP 0.00/0.00, ADVP 45.45/62.50, NP 64.98/78.63,
    # PP 83.18/98.89, SBAR 66.67/33.33, VP 69.00/79.31 (precision/recall).
    gold, pred = _conll()
    assert sum(map(len, gold)) == 961
    g, p = set(E.get_entities(gold)), set(E.get_entities(pred))
    assert (len(g), len(p), len(g & p)) == (459, 539, 371)
    scores = E.span_prf(pred, gold)
    assert round(scores["precision"], 2) == 68.83
    assert round(scores["recall"], 2) == 80.83
    assert round(scores["f1"], 2) == 74.35
    assert round(E.token_accuracy(pred, gold), 2) == 84.08
    expected = {"ADJP": (0.0, 0.0), "ADVP": (45.45, 62.5), "NP": (64.98, 78.63), "PP": (83.18, 98.89),
                "SBAR": (66.67, 33.33), "VP": (69.0, 79.31)}
    for typ, (prec, rec) in expected.items():
        gt, pt = {e for e in g if e[0] == typ}, {e for e in p if e[0] == typ}
        assert round(100 * len(gt & pt) / len(pt), 2) == prec, typ
        assert round(100 * len(gt & pt) / len(gt), 2) == rec, typ


def test_udpos_tags_are_chunked_like_xtreme():
    # XTREME's run_tag.py scores UPOS strings with seqeval: runs of one tag are one chunk.
    assert E.get_entities(["NOUN", "NOUN", "VERB"]) == [("NOUN", 0, 1), ("VERB", 2, 2)]
    # 2 of 3 tokens right, but no chunk right: F1 0, token accuracy 66.7.
    scores = E.span_prf([["NOUN", "VERB", "VERB"]], [["NOUN", "NOUN", "VERB"]])
    assert scores == {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    assert E.token_accuracy([["NOUN", "VERB", "VERB"]], [["NOUN", "NOUN", "VERB"]]) == pytest.approx(200 / 3)
    # SCONJ and SYM start with S ("single"): each token is its own chunk.
    assert E.get_entities(["SCONJ", "SCONJ", "NOUN"]) == [("SCONJ", 0, 0), ("SCONJ", 1, 1), ("NOUN", 2, 2)]
    # From seqeval 0.0.12 (transcribed): gold INTJ(0,1) SYM(2) SYM(3); pred INTJ(0) NOUN(1) SYM(2) SYM(3)
    # -> correct 2, precision 2/4, recall 2/3, F1 4/7.
    scores = E.span_prf([["INTJ", "NOUN", "SYM", "SYM"]], [["INTJ", "INTJ", "SYM", "SYM"]])
    assert scores == pytest.approx({"f1": 400 / 7, "precision": 50.0, "recall": 200 / 3})
    # Where seqeval >= 1.0 would differ (CCONJ/SCONJ share its type "CONJ"; X shares O's "_"):
    assert E.get_entities(["CCONJ", "SCONJ", "X", "X"]) == [("CCONJ", 0, 0), ("SCONJ", 1, 1), ("X", 2, 3)]


def _read_tags(path):
    sents, cur = [], []
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line:
            if cur:
                sents.append(cur)
                cur = []
            continue
        cur.append(line.split("\t")[-1])
    if cur:
        sents.append(cur)
    return sents


def _perturb(sents, tag, every):
    out, n = [], 0
    for sent in sents:
        new = []
        for t in sent:
            new.append(tag if n % every == 0 else t)
            n += 1
        out.append(new)
    return out


@pytest.mark.parametrize("path, tag, every, n_sent, n_tok, f1, precision, recall, acc", [
    # values from the transcribed seqeval 0.0.12 on the same files and perturbations
    ("udpos/test-tl.tsv", "NOUN", 5, 55, 292, 78.84267631103073, 83.5249042145594, 74.65753424657534, 85.27397260273972),
    ("udpos/test-yo.tsv", "X", 4, 100, 2664, 69.93464052287581, 68.04451510333863, 71.9327731092437, 75.0),
    ("panx/dev-sw.tsv", "I-PER", 7, 1000, 5609, 55.22822920038847, 45.37234042553192, 70.55417700578991,
     87.52005705116777),
    ("panx/dev-yo.tsv", "O", 3, 100, 489, 8.30188679245283, 6.962025316455696, 10.2803738317757, 74.84662576687117),
])
def test_tagging_on_real_files_matches_seqeval(data_dir, path, tag, every, n_sent, n_tok, f1, precision, recall, acc):
    gold = _read_tags(data_dir / "xtreme" / path)
    assert (len(gold), sum(map(len, gold))) == (n_sent, n_tok)
    pred = _perturb(gold, tag, every)
    assert E.span_prf(pred, gold) == pytest.approx({"f1": f1, "precision": precision, "recall": recall}, abs=1e-9)
    assert E.token_accuracy(pred, gold) == pytest.approx(acc, abs=1e-9)
    assert E.span_f1(gold, gold) == 100.0


def test_tagging_input_checks():
    with pytest.raises(TypeError, match="tag strings"):
        E.span_f1([[1, 2]], [[1, 2]])
    with pytest.raises(ValueError, match="sentence 0"):
        E.span_f1([["O", "O"]], [["O"]])
    with pytest.raises(ValueError):
        E.token_accuracy([["O"]], [["O"], ["O"]])


# --------------------------------------------------------------------------- QA

@pytest.mark.parametrize("lang, text, mlqa, squad", [
    # outputs of the transcribed MLQA and SQuAD v1.1 normalize_answer
    ("en", "The Eiffel Tower, an icon!", "eiffel tower icon", "eiffel tower icon"),
    ("es", "¿La casa de los Estados Unidos?", "casa de estados unidos", "¿la casa de los estados unidos"),
    ("de", "dem Haus des Vaters „Zeit“", "haus vaters zeit", "dem haus des vaters „zeit“"),
    ("vi", "những cái bàn của Việt Nam", "bàn việt nam", "những cái bàn của việt nam"),
    ("ar", "الكتاب في المدينة،", "كتاب في مدينة", "الكتاب في المدينة،"),
    ("hi", "नई दिल्ली। भारत", "नई दिल्ली भारत", "नई दिल्ली। भारत"),
    ("zh", "1949年10月1日，中华人民共和国", "1949 年 10 月 1 日 中 华 人 民 共 和 国", "1949年10月1日，中华人民共和国"),
    ("zh", "《红楼梦》iPhone 手机", "红 楼 梦 iphone 手 机", "《红楼梦》iphone 手机"),
])
def test_answer_normalisation(lang, text, mlqa, squad):
    assert E.mlqa_normalize(text, lang) == mlqa
    assert E.squad_normalize(text) == squad


def test_mlqa_unknown_language():
    with pytest.raises(ValueError, match="known: en, es"):
        E.mlqa_normalize("x", "sw")
    with pytest.raises(ValueError, match="language"):
        E.qa_scores(["x"], [["x"]], "mlqa")


def test_qa_hand():
    # "Broncos" vs "Denver Broncos": precision 1, recall 1/2, F1 2/3; the best gold answer counts.
    assert E.qa_scores(["Broncos"], [["Denver Broncos"]]) == pytest.approx({"exact_match": 0.0, "f1": 200 / 3})
    assert E.qa_scores(["Broncos"], [["Denver Broncos", "the Broncos"]]) == {"exact_match": 100.0, "f1": 100.0}
    # answers column of the QA schema works as a reference
    assert E.qa_scores(["the Broncos"], [{"text": ["Broncos"], "answer_start": [3]}])["exact_match"] == 100.0


CURATED = {
    "en": [("The Eiffel Tower", ["Eiffel Tower"]), ("a dog, the cat", ["the dog and a cat", "dog"]),
           ("in 1889.", ["1889"]), ("Paris", ["London"]), ("“Paris”", ["Paris"]), ("an apple an apple", ["apple"]),
           ("", ["x"])],
    "es": [("la casa blanca", ["casa blanca"]), ("El Niño", ["niño"]),
           ("los Estados Unidos", ["Estados Unidos de América"]), ("¿Qué?", ["qué"])],
    "de": [("der Rhein", ["Rhein"]), ("dem Haus des Vaters", ["Haus Vaters"]), ("Die „Zeit“", ["zeit"]),
           ("einen Hund", ["ein Hund"])],
    "vi": [("những cái bàn", ["bàn"]), ("thủ đô của Việt Nam", ["thủ đô Việt Nam"]), ("Hà Nội.", ["Hà Nội"])],
    "ar": [("الكتاب", ["كتاب"]), ("في المدينة المنورة", ["المدينة"]), ("جامعة القاهرة،", ["جامعة القاهرة"])],
    "hi": [("भारत की राजधानी", ["राजधानी"]), ("नई दिल्ली।", ["नई दिल्ली"])],
    "zh": [("北京大学", ["北京"]), ("1949年10月1日", ["1949年"]), ("《红楼梦》", ["红楼梦"]), ("iPhone 手机", ["iphone手机"]),
           ("中华人民共和国成立", ["中华人民共和国"])],
}
# (MLQA script result, SQuAD v1.1 script result) as (exact_match, f1), from the transcribed scripts
CURATED_EXPECTED = {
    "en": ((28.571428571428573, 59.04761904761905), (14.285714285714286, 44.76190476190476)),
    "es": ((75.0, 91.66666666666666), (0.0, 50.95238095238096)),
    "de": ((100.0, 100.0), (0.0, 45.83333333333333)),
    "vi": ((100.0, 100.0), (33.333333333333336, 79.62962962962963)),
    "ar": ((66.66666666666667, 83.33333333333333), (0.0, 33.333333333333336)),
    "hi": ((50.0, 75.0), (0.0, 50.0)),
    "zh": ((40.0, 80.83333333333334), (0.0, 0.0)),
}


@pytest.mark.parametrize("lang", sorted(CURATED))
def test_qa_curated_cases_match_official_scripts(lang):
    preds = [p for p, _ in CURATED[lang]]
    refs = [r for _, r in CURATED[lang]]
    (m_em, m_f1), (s_em, s_f1) = CURATED_EXPECTED[lang]
    assert E.qa_scores(preds, refs, "mlqa", lang) == pytest.approx({"exact_match": m_em, "f1": m_f1}, abs=1e-9)
    assert E.qa_scores(preds, refs, "squad") == pytest.approx({"exact_match": s_em, "f1": s_f1}, abs=1e-9)


MLQA_DEV_EXPECTED = {  # language: (n questions, MLQA script EM/F1, SQuAD v1.1 script EM/F1)
    "zh": (504, (40.07936507936508, 74.40271375714768), (20.03968253968254, 34.94432705742227)),
    "ar": (517, (40.03868471953578, 70.27078680475682), (20.11605415860735, 53.91462795152215)),
    "de": (512, (41.6015625, 67.55991457985915), (20.3125, 50.67812010856858)),
    "vi": (511, (40.11741682974559, 72.57565606065246), (20.15655577299413, 58.44225071656127)),
    "hi": (507, (40.23668639053255, 69.18343789953293), (20.315581854043394, 53.98870040803701)),
    "es": (500, (40.4, 70.69198334952118), (20.2, 55.71016681668368)),
    "en": (1148, (40.59233449477352, 67.819439222278), (20.644599303135887, 51.92270058307092)),
}


@pytest.mark.parametrize("lang", sorted(MLQA_DEV_EXPECTED))
def test_mlqa_dev_matches_official_scripts(data_dir, lang):
    path = data_dir / "xtreme" / "mlqa" / "MLQA_V1" / "dev" / f"dev-context-{lang}-question-{lang}.json"
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    preds, refs, i = {}, {}, 0
    for article in data:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                t = qa["answers"][0]["text"]
                # deterministic wrong-ish answers: exact, clipped, too long, half, quoted
                preds[qa["id"]] = [t, t[1:], t + " " + para["context"][:10], t[: len(t) // 2], "“" + t + "”."][i % 5]
                refs[qa["id"]] = [a["text"] for a in qa["answers"]]
                i += 1
    n, (m_em, m_f1), (s_em, s_f1) = MLQA_DEV_EXPECTED[lang]
    assert i == n
    assert E.qa_scores(preds, refs, "mlqa", lang) == pytest.approx({"exact_match": m_em, "f1": m_f1}, abs=1e-9)
    assert E.qa_scores(preds, refs, "squad") == pytest.approx({"exact_match": s_em, "f1": s_f1}, abs=1e-9)
    assert E.compute("mlqa", lang, preds, refs) == pytest.approx({"exact_match": m_em, "f1": m_f1}, abs=1e-9)


def test_missing_predictions_and_squad_v2():
    # SQuAD v1.1 script: an unanswered question counts 0; extra predictions are ignored.
    # q2: P=1, R=1/2 -> F1 2/3; q4: "" vs "the" both normalise to "" -> EM 1, F1 0; q5 unanswered (None).
    refs = {"2": ["Denver Broncos"], "4": ["the"], "5": ["Santa Clara"]}
    preds = {"1": "", "2": "Broncos", "3": "a dog", "4": "", "5": None}
    assert E.qa_scores(preds, refs) == pytest.approx({"exact_match": 100 / 3, "f1": 200 / 9})
    # a question id with no prediction at all is refused (the official script scores it 0 with a warning)
    with pytest.raises(E.Unscorable, match=r"1 of 3 questions have no prediction \(ids 5\)"):
        E.qa_scores({k: v for k, v in preds.items() if k != "5"}, refs)
    assert E.qa_scores(["Broncos", "", None], list(refs.values())) == pytest.approx(
        {"exact_match": 100 / 3, "f1": 200 / 9})
    # SQuAD v2.0 script (transcribed) on 5 questions, 1 and 3 unanswerable, 5 unanswered (left out):
    # {'exact': 50.0, 'f1': 66.66666666666666}
    refs2 = {"1": [], "2": ["Denver Broncos"], "3": [], "4": ["the"], "5": ["Santa Clara"]}
    assert E.qa_scores(preds, refs2, "squad_v2") == pytest.approx({"exact_match": 50.0, "f1": 200 / 3})
    assert E.compute("squad_v2", "en", preds, refs2) == pytest.approx({"exact_match": 50.0, "f1": 200 / 3})
    with pytest.raises(ValueError, match="no gold answer"):
        E.qa_scores(["x"], [[]], "squad")


# --------------------------------------------------------------------------- Tatoeba

def _unit(deg):
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def test_tatoeba_directions():
    # Non-English at 0, 90, 40 degrees; English at 22, 90, 55; gold i <-> i.
    xx = np.array([_unit(d) for d in (0, 90, 40)], dtype=np.float32)
    en = np.array([_unit(d) for d in (22, 90, 55)], dtype=np.float32)
    # XTREME's similarity_search(x=xx, y=en) (transcribed) predicts [2, 1, 2]: English queries.
    assert E.tatoeba_predict(en, xx).tolist() == [2, 1, 2]
    assert E.tatoeba_accuracy(en, xx, [0, 1, 2]) == pytest.approx(200 / 3)
    # The other direction: 0->22 (22 deg), 90->90, 40->55 (15 deg, closer than 22 at 18 deg).
    assert E.tatoeba_accuracy(xx, en, [0, 1, 2]) == 100.0
    # Scale does not matter (rows are normalised).
    assert E.tatoeba_accuracy(en * 7, xx * 0.1, [0, 1, 2]) == pytest.approx(200 / 3)
    assert E.compute("tatoeba", "xx", E.tatoeba_predict(en, xx), [0, 1, 2]) == pytest.approx({"accuracy": 200 / 3})
    with pytest.raises(ValueError, match="gold_index"):
        E.tatoeba_accuracy(en, xx, [0, 1])


# --------------------------------------------------------------------------- BUCC

SRC_DEG, TGT_DEG = (0, 30, 100, 180, 300), (5, 35, 60, 95, 200, 310)
SRC_IDS = [f"s{i}" for i in range(5)]
TGT_IDS = [f"t{j}" for j in range(6)]
GOLD = ["s3\tt4", "s4\tt5", "s2\tt3", "s1\tt2"]


def _small_bucc():
    x = np.array([_unit(d) for d in SRC_DEG], dtype=np.float32)
    y = np.array([_unit(d) for d in TGT_DEG], dtype=np.float32)
    return x, y


def test_bucc_margin_hand():
    # Ratio margin, k=2, of s3 (180 deg) and t4 (200 deg): cos 20 / ((mean_2(s3) + mean_2(t4)) / 2).
    # s3's two nearest targets: 200 (20 deg off) and 95 (85 deg off); t4's two nearest sources:
    # 180 (20 deg) and 100 or 300 (both 100 deg off).
    c = lambda d: math.cos(math.radians(d))  # noqa: E731
    expected = c(20) / (((c(20) + c(85)) / 2 + (c(20) + c(100)) / 2) / 2)
    x, y = _small_bucc()
    cands = E.bucc_mine(x, y, SRC_IDS, TGT_IDS, k=2)
    assert cands[("s3", "t4")] == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(2.096484, abs=1e-6)


def test_bucc_small_matches_xtreme():
    # xtreme's mine_bitext + read_candidate2score + bucc_eval (transcribed, faiss replaced by an
    # exact search) on these vectors, k=2:
    x, y = _small_bucc()
    cands = E.bucc_mine(x, y, SRC_IDS, TGT_IDS, k=2)
    assert cands == pytest.approx({("s3", "t4"): 2.096484, ("s4", "t5"): 1.297925, ("s2", "t3"): 1.252661,
                                   ("s0", "t0"): 1.071797, ("s1", "t1"): 1.071797}, abs=1e-6)
    # {'best-threshold': 1.162228763103485, 'precision': 100.0, 'recall': 75.0, 'F1': 85.71428571428571}
    scores = E.bucc_scores(cands, GOLD)
    assert scores == pytest.approx({"f1": 85.71428571428571, "precision": 100.0, "recall": 75.0,
                                    "threshold": 1.162228763103485}, abs=1e-6)
    assert E.bucc_mine_and_score(x, y, SRC_IDS, TGT_IDS, GOLD, k=2) == pytest.approx(scores)
    # Texts with a repeated sentence (t3 and t4 are both "d"): the two share one embedding (the
    # last one's, 200 deg) and neither gets a pair. xtreme gives candidates
    # {s4-t5: 1.297925, s2-t2: 1.086306, s0-t0: 1.071797, s1-t1: 1.071797} and
    # {'best-threshold': 1.1921154856681824, 'precision': 100.0, 'recall': 25.0, 'F1': 40.0}
    texts = ["a", "b", "c", "d", "d", "e"]
    cands = E.bucc_mine(x, y, SRC_IDS, TGT_IDS, k=2, tgt_texts=texts)
    assert cands == pytest.approx({("s4", "t5"): 1.297925, ("s2", "t2"): 1.086306, ("s0", "t0"): 1.071797,
                                   ("s1", "t1"): 1.071797}, abs=1e-6)
    assert E.bucc_scores(cands, GOLD) == pytest.approx(
        {"f1": 40.0, "precision": 100.0, "recall": 25.0, "threshold": 1.1921154856681824}, abs=1e-6)


def _trig_emb(n, d, a):
    return np.array([[math.sin(a * (i + 1) + 0.7 * (j + 1) ** 2) + 0.5 * math.cos((i + 1) * (j + 2))
                      for j in range(d)] for i in range(n)], dtype=np.float32)


def test_bucc_margin_beats_cosine_like_xtreme():
    # Deterministic vectors on which the margin-best neighbour differs from the cosine-best one
    # in both directions. Candidates and bucc_eval result from xtreme's pipeline (transcribed), k=4.
    x, y = _trig_emb(12, 5, 1.3), _trig_emb(16, 5, 0.9)
    cands = E.bucc_mine(x, y, [f"s{i}" for i in range(12)], [f"t{j}" for j in range(16)])
    assert cands == pytest.approx({
        ("s3", "t11"): 1.353941, ("s7", "t4"): 1.32454, ("s2", "t3"): 1.279264, ("s4", "t13"): 1.270091,
        ("s8", "t12"): 1.268378, ("s11", "t9"): 1.219623, ("s9", "t14"): 1.184081, ("s0", "t0"): 1.135351,
        ("s5", "t15"): 1.12663, ("s6", "t2"): 1.124469, ("s10", "t8"): 1.104835, ("s1", "t1"): 1.008701}, abs=1e-6)
    gold = ["s3\tt11", "s2\tt3", "s4\tt13", "s9\tt14", "s99\tt99"]
    # {'best-threshold': 1.1597159504890442, 'precision': 57.14285714285714, 'recall': 80.0, 'F1': 66.66666666666666}
    assert E.bucc_scores(cands, gold) == pytest.approx(
        {"f1": 66.66666666666666, "precision": 57.14285714285714, "recall": 80.0, "threshold": 1.1597159504890442},
        abs=1e-6)


def test_bucc_threshold_hand():
    cands = {("a", "1"): 0.9, ("b", "2"): 0.8, ("c", "3"): 0.7, ("d", "4"): 0.6}
    gold = [("a", "1"), ("c", "3"), ("e", "5")]
    # cuts: F1 .5, .4, 2/3 (P 2/3, R 2/3), 4/7 -> best after c: threshold (0.7 + 0.6) / 2
    assert E.bucc_optimize_threshold(cands, gold) == pytest.approx(0.65)
    assert E.bucc_scores(cands, gold) == pytest.approx(
        {"f1": 200 / 3, "precision": 200 / 3, "recall": 200 / 3, "threshold": 0.65})
    # A given threshold is applied as is (>=).
    assert E.bucc_scores(cands, gold, threshold=0.8) == pytest.approx(
        {"f1": 40.0, "precision": 50.0, "recall": 100 / 3, "threshold": 0.8})
    # Best cut = every candidate (xtreme's bucc_optimize would index past its list here).
    all_gold = [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]
    assert E.bucc_scores(cands, all_gold) == pytest.approx(
        {"f1": 100.0, "precision": 100.0, "recall": 100.0, "threshold": 0.6})
    # No correct candidate: threshold 0, all scores 0 (as xtreme).
    assert E.bucc_scores(cands, [("z", "9")]) == {"f1": 0.0, "precision": 0.0, "recall": 0.0, "threshold": 0.0}


def test_bucc_pair_prf_like_xtreme_evaluate():
    # xtreme evaluate.py bucc_f1 on "src\ttgt" lines: 2 correct of 3 predicted, 4 gold.
    pred = ["s1\tt1", "s2\tt2", "s3\tt9"]
    gold = ["s1\tt1", "s2\tt2", "s3\tt3", "s4\tt4"]
    p, r = 2 / 3, 2 / 4
    assert E.bucc_pair_prf(pred, gold) == pytest.approx(
        {"f1": 100 * 2 * p * r / (p + r), "precision": 100 * p, "recall": 100 * r})
    assert E.compute("bucc2018", "zh", pred, gold) == pytest.approx(
        {"f1": 100 * 2 * p * r / (p + r), "precision": 100 * p, "recall": 100 * r})
    assert E.bucc_pair_prf(["s9\tt9"], gold) == {"f1": 0.0, "precision": 0.0, "recall": 0.0}


def test_knn_is_exact_for_every_chunk_size():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(37, 8)).astype(np.float32)
    y = rng.normal(size=(53, 8)).astype(np.float32)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=1, keepdims=True)
    sims = xn.astype(np.float64) @ yn.T.astype(np.float64)
    brute_x = np.argsort(-sims, axis=1)[:, :4]
    brute_y = np.argsort(-sims.T, axis=1)[:, :4]
    ids_s, ids_t = [f"s{i}" for i in range(37)], [f"t{j}" for j in range(53)]
    base = E.bucc_mine(x, y, ids_s, ids_t)
    # chunk sizes 1 and 6 leave 1-row chunks (37 = 6*6 + 1); 1000 is one chunk
    for chunk in (1, 6, 1000):
        x2y_sim, x2y_ind, y2x_sim, y2x_ind = E._knn_both_ways(xn, yn, 4, chunk)
        assert (x2y_ind == brute_x).all() and (y2x_ind == brute_y).all()
        assert np.allclose(x2y_sim, np.take_along_axis(sims, brute_x, 1), atol=1e-6)
        assert E.bucc_mine(x, y, ids_s, ids_t, chunk_size=chunk) == pytest.approx(base)
    # k above the 8 that switches to argpartition gives the same neighbours
    assert (E._knn_both_ways(xn, yn, 12, 5)[1][:, :4] == brute_x).all()


def test_bucc_real_gold_file(data_dir):
    lines = (data_dir / "xtreme" / "bucc2018" / "zh-en.dev.gold").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 257
    gold = [tuple(line.split("\t")) for line in lines]
    # every gold pair scored 2.0, 50 wrong pairs 1.0: the oracle threshold separates them
    cands = {pair: 2.0 for pair in gold}
    cands.update({(f"zh-x{i}", f"en-x{i}"): 1.0 for i in range(50)})
    assert E.bucc_scores(cands, lines) == {"f1": 100.0, "precision": 100.0, "recall": 100.0, "threshold": 1.5}
    triples = [(s, t, v) for (s, t), v in cands.items()]
    assert E.compute("bucc2018", "zh", triples, lines, threshold=0.5) == pytest.approx(
        {"f1": 200 * (257 / 307) / (257 / 307 + 1), "precision": 100 * 257 / 307, "recall": 100.0})
    assert E.compute("bucc2018", "zh", cands, gold, metrics=["bucc_threshold"]) == {"threshold": 1.5}


# --------------------------------------------------------------------------- table and rows

BRIEF_TASKS = {
    **{t: {"accuracy"} for t in ("xnli", "pawsx", "xcopa", "anli", "americasnli", "myxnli", "siqa", "cosmosqa",
                                 "mnli", "qqp", "hellaswag", "commonsenseqa", "tatoeba")},
    "udpos": {"f1", "accuracy"}, "panx": {"f1"}, "xquad": {"exact_match", "f1"}, "tydiqa": {"exact_match", "f1"},
    "squad": {"exact_match", "f1"}, "squad_v2": {"exact_match", "f1"}, "mlqa": {"exact_match", "f1"},
    "bucc2018": {"f1", "precision", "recall"},
}


def test_table_covers_every_task():
    assert set(E.TASK_METRICS) == set(BRIEF_TASKS)
    for task, keys in E.TASK_METRICS.items():
        assert {E.METRICS[k].name for k in keys} == BRIEF_TASKS[task], task
        assert all(E.METRICS[k].higher_is_better for k in keys)
    for key, spec in E.METRICS.items():
        assert spec.key == key and spec.inputs
    assert E.METRICS["bucc_threshold"].higher_is_better is None
    assert E.PRIMARY_METRIC["panx"] == "f1" and E.PRIMARY_METRIC["xnli"] == "accuracy"
    assert E.PRIMARY_METRIC["mlqa"] == "f1" and E.PRIMARY_METRIC["tatoeba"] == "accuracy"


def test_compute_dispatch():
    assert E.compute("xnli", "sw", [0, 1, 2, 2], [0, 1, 2, 1]) == {"accuracy": 75.0}
    assert E.compute("pawsx", "de", np.array([1, 0]), np.array([1, 0])) == {"accuracy": 100.0}
    gold, pred = [["NOUN", "NOUN", "VERB"]], [["NOUN", "VERB", "VERB"]]
    assert E.compute("udpos", "yo", pred, gold) == pytest.approx({"f1": 0.0, "accuracy": 200 / 3})
    assert E.compute("panx", "sw", [["B-PER", "O"]], [["B-PER", "O"]]) == {"f1": 100.0}
    assert E.compute("panx", "sw", [["B-PER", "B-LOC"]], [["B-PER", "O"]],
                     metrics=["span_precision", "span_recall"]) == {"precision": 50.0, "recall": 100.0}
    # XQuAD / TyDiQA use SQuAD normalisation, MLQA its own: Spanish articles only count for MLQA.
    assert E.compute("xquad", "es", ["la casa"], [["casa"]]) == pytest.approx({"exact_match": 0.0, "f1": 200 / 3})
    assert E.compute("tydiqa", "sw", ["la casa"], [["casa"]]) == pytest.approx({"exact_match": 0.0, "f1": 200 / 3})
    assert E.compute("mlqa", "es", ["la casa"], [["casa"]]) == {"exact_match": 100.0, "f1": 100.0}
    with pytest.raises(ValueError, match="language"):
        E.compute("mlqa", None, ["la casa"], [["casa"]])


def test_compute_errors_name_the_known_values():
    with pytest.raises(ValueError, match=r"unknown task 'xnlii'; known tasks: .*panx.*xnli"):
        E.compute("xnlii", "en", [1], [1])
    with pytest.raises(ValueError, match=r"unknown metric 'bleu'; known metrics: .*accuracy.*squad_f1"):
        E.compute("xnli", "en", [1], [1], metrics=["bleu"])
    with pytest.raises(ValueError, match="unknown option 'threshold'"):
        E.compute("xnli", "en", [1], [1], threshold=0.5)
    with pytest.raises(ValueError, match="clashing"):
        E.compute("udpos", "en", [["X"]], [["X"]], metrics=["accuracy", "token_accuracy"])
    with pytest.raises(ValueError, match="threshold needs scored candidates"):
        E.compute("bucc2018", "zh", [("s", "t")], [("s", "t")], threshold=1.0)


def test_metric_rows():
    rows = E.metric_rows("run-abc123", "target", "mlqa", "zh", "dev", {"exact_match": 40, "f1": 74.4},
                         504, True, seed=2, intermediate_task="mnli")
    assert [r["metric"] for r in rows] == ["exact_match", "f1"]
    assert rows[0] == {"run_id": "run-abc123", "stage": "target", "task": "mlqa", "language": "zh", "split": "dev",
                       "metric": "exact_match", "value": 40.0, "n_examples": 504, "seen": True, "seed": 2,
                       "intermediate_task": "mnli"}
    assert isinstance(rows[0]["value"], float)
    json.dumps(rows)  # plain JSON types only
    with pytest.raises(ValueError, match="overwrite"):
        E.metric_rows("r", "target", "xnli", "sw", "dev", {"accuracy": 1.0}, 1, False, metric="x")
    with pytest.raises(ValueError, match="not finite"):
        E.metric_rows("r", "target", "xnli", "sw", "dev", {"accuracy": float("nan")}, 1, False)
    with pytest.raises(ValueError, match="no scores"):
        E.metric_rows("r", "target", "xnli", "sw", "dev", {}, 1, False)
