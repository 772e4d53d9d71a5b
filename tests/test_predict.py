"""predict(): order restored after length-sorting, per-word tags, QA span post-processing."""
import numpy as np
import pytest
import torch

from xfer_nb.featurize import collate, featurize
from xfer_nb.models.heads import MultiTaskModel, TaskModel
from xfer_nb.predict import model_outputs, postprocess_qa, predict, tags_per_word
from xfer_nb.tasks.schema import MULTIPLE_CHOICE, PAIR, QA, TAGGING, make_dataset

from test_featurize import build_tokenizer, panx_rows, pawsx_rows, siqa_rows, xquad_rows
from test_heads import tiny_encoder


@pytest.fixture(scope="module")
def tok(data_dir):
    return build_tokenizer(data_dir)


def one_by_one(model, feats, **kw):
    """Reference: each row alone, no padding at all."""
    outs = []
    with torch.no_grad():
        for i in range(len(feats)):
            b = collate([feats[i]], 1)
            b.pop("labels", None), b.pop("start_positions", None), b.pop("end_positions", None)
            outs.append(model(**b, **kw))
    return outs


def test_pair_predictions_in_dataset_order(data_dir, tok):
    feats = featurize(make_dataset(PAIR, pawsx_rows(data_dir, 23)), PAIR, tok, cache_dir=False)
    assert len(set(feats["length"])) > 10   # lengths vary, so sorting reorders
    model = TaskModel(tiny_encoder(len(tok)), PAIR, 3, seed=0)
    model.train()
    preds = predict(model, feats, PAIR, batch_size=5)
    assert model.training   # mode restored
    ref = one_by_one(model.eval(), feats)
    assert preds == [int(o["logits"].argmax()) for o in ref]
    outs = model_outputs(model, feats, PAIR, batch_size=5)
    for o, r in zip(outs, ref):   # padding in a batch changes nothing
        np.testing.assert_allclose(o["logits"], r["logits"][0].numpy(), atol=1e-5)


def test_precision_autocasts_the_forward_pass_and_returns_float32(data_dir, tok):
    from xfer_nb.devices import bf16_supported
    feats = featurize(make_dataset(PAIR, pawsx_rows(data_dir, 23)), PAIR, tok, cache_dir=False)
    model = TaskModel(tiny_encoder(len(tok)), PAIR, 3, seed=0)
    fp32 = model_outputs(model, feats, PAIR, batch_size=5)
    auto = model_outputs(model, feats, PAIR, batch_size=5, precision="auto")
    if bf16_supported():
        bf16 = model_outputs(model, feats, PAIR, batch_size=5, precision="bf16")
        assert all(o["logits"].dtype == np.float32 for o in bf16)
        # bf16 keeps ~3 significant digits: close to fp32, yet not bit-equal (it really ran in bf16)
        diffs = np.abs(np.stack([o["logits"] for o in bf16]) - np.stack([o["logits"] for o in fp32]))
        assert 0 < diffs.max() < 0.1
        np.testing.assert_array_equal(np.stack([o["logits"] for o in auto]), np.stack([o["logits"] for o in bf16]))
    else:
        np.testing.assert_array_equal(np.stack([o["logits"] for o in auto]), np.stack([o["logits"] for o in fp32]))
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        model_outputs(model, feats, PAIR, precision="fp16")


def test_tagging_one_tag_per_word(data_dir, tok):
    rows, names = panx_rows(data_dir, 12)
    feats = featurize(make_dataset(TAGGING, rows), TAGGING, tok, max_seq_length=24, cache_dir=False)
    model = TaskModel(tiny_encoder(len(tok)), TAGGING, len(names), seed=0).eval()
    preds = predict(model, feats, TAGGING, batch_size=4, fill_tag_id=0)
    assert [len(p) for p in preds] == [len(r["tokens"]) for r in rows]
    ref = one_by_one(model, feats)
    filled = 0
    for p, r, f in zip(preds, ref, feats):
        token_tags = r["logits"][0].argmax(-1).tolist()
        first = {}
        for pos, w in enumerate(f["word_ids"]):
            if w >= 0 and w not in first:
                first[w] = token_tags[pos]
        for w, tag in enumerate(p):
            if w in first:
                assert tag == first[w]
            else:
                assert tag == 0
                filled += 1
    assert filled > 0 and preds.filled_words == filled   # max_seq_length=24 cuts long sentences
    assert preds.total_words == sum(len(r["tokens"]) for r in rows)


def test_tags_per_word_fill_defaults_to_most_frequent():
    token_preds = [[9, 4, 5, 4, 9], [9, 4, 9]]
    word_ids = [[-1, 0, 0, 1, -1], [-1, 0, -1]]
    out = tags_per_word(token_preds, word_ids, [3, 2])
    assert out == [[4, 4, 4], [4, 4]]   # first sub-token wins; missing words get the commonest (4)
    assert (out.filled_words, out.total_words) == (2, 5)
    assert tags_per_word(token_preds, word_ids, [3, 2], fill_tag_id=0) == [[4, 4, 0], [4, 0]]


def test_multiple_choice_and_multitask(data_dir, tok):
    rows = siqa_rows(data_dir, 9)
    feats = featurize(make_dataset(MULTIPLE_CHOICE, rows), MULTIPLE_CHOICE, tok, cache_dir=False)
    model = MultiTaskModel(tiny_encoder(len(tok)), {"siqa": (MULTIPLE_CHOICE, 3), "pawsx": (PAIR, 2)}, seed=0)
    preds = predict(model, feats, MULTIPLE_CHOICE, batch_size=4, task="siqa")
    ref = one_by_one(model.eval(), feats, task="siqa")
    assert preds == [int(o["logits"].argmax()) for o in ref]
    assert all(0 <= p < 3 for p in preds)


def _window(example_id, context, spans, n_question=3):
    """A fake window: <s>, question tokens, </s></s>, context tokens at `spans`, </s>."""
    offsets = [None] * (1 + n_question + 2) + [list(s) for s in spans] + [None]
    return {"example_id": example_id, "context": context, "offset_mapping": offsets}


def test_qa_postprocess_best_span_across_windows():
    context = "Alpha beta gamma delta epsilon zeta eta theta"
    words = [(m, m + len(w)) for m, w in zip([0, 6, 11, 17, 23, 31, 36, 40],
                                              "Alpha beta gamma delta epsilon zeta eta theta".split())]
    w1 = _window("q1", context, words[0:5])    # Alpha .. epsilon
    w2 = _window("q1", context, words[3:8])    # delta .. theta (overlap: delta, epsilon)
    other = _window("q2", context, words[0:4])
    n1, n2 = len(w1["offset_mapping"]), len(w2["offset_mapping"])
    s1, e1, s2, e2 = np.full(n1, -10.0), np.full(n1, -10.0), np.full(n2, -10.0), np.full(n2, -10.0)
    # layout: 0 <s>, 1-3 question, 4-5 </s></s>, 6-10 context, 11 </s>
    # window 1: best valid span "beta" (score 4), the highest logits sit on question tokens (invalid)
    s1[1], e1[2] = 50, 50
    s1[7], e1[7] = 2, 2
    # window 2: "epsilon zeta" (tokens 7..8 of the window) scores 3 + 2.5 = 5.5 > 4
    s2[7], e2[8] = 3, 2.5
    # and an end before its start (7 -> 6), which must not be taken, with a higher sum
    e2[6] = 9
    got = postprocess_qa([w1, w2, other], [s1, s2, np.zeros(len(other["offset_mapping"]))],
                         [e1, e2, np.zeros(len(other["offset_mapping"]))])
    assert got["q1"] == "epsilon zeta"
    assert list(got) == ["q1", "q2"] and got["q2"] in context
    # a long span is refused when longer than max_answer_length
    s2[6], e2[10] = 10, 10     # "delta .. theta": 5 tokens, score 20
    assert postprocess_qa([w1, w2], [s1, s2], [e1, e2])["q1"] == "delta epsilon zeta eta theta"
    assert postprocess_qa([w1, w2], [s1, s2], [e1, e2], max_answer_length=4)["q1"] == "delta"   # 10 + 9


def test_qa_predict_end_to_end(data_dir, tok):
    rows = xquad_rows(data_dir, 4)
    feats = featurize(make_dataset(QA, rows), QA, tok, max_seq_length=96, doc_stride=16, max_query_length=20,
                      for_training=False, cache_dir=False)
    model = TaskModel(tiny_encoder(len(tok)), QA, 2, seed=0)
    preds = predict(model, feats, QA, batch_size=8, max_answer_length=5)
    assert list(preds) == [r["id"] for r in rows]
    for r in rows:
        assert preds[r["id"]] and preds[r["id"]] in r["context"]
    # with the logits known, the post-processing picks the same text
    outs = model_outputs(model, feats, QA)
    assert postprocess_qa(feats, [o["start_logits"] for o in outs], [o["end_logits"] for o in outs],
                          max_answer_length=5) == preds
    train_feats = featurize(make_dataset(QA, rows), QA, tok, max_seq_length=96, doc_stride=16,
                            max_query_length=20, cache_dir=False)
    with pytest.raises(ValueError, match="for_training=False"):
        predict(model, train_feats, QA)
