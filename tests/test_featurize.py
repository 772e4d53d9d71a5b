"""featurize / collate / used_token_ids on real rows of ../shared/data with a tiny tokenizer."""
import json
import time

import datasets
import numpy as np
import pytest
import torch

from xfer_nb.featurize import IGNORE_INDEX, collate, featurize, used_token_ids
from xfer_nb.tasks.schema import MULTIPLE_CHOICE, PAIR, QA, TAGGING, make_dataset


# ----------------------------------------------------------------------------- real rows

def pawsx_rows(data_dir, n=40):
    rows = []
    with open(data_dir / "xtreme/pawsx/dev-en.tsv", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i == n:
                break
            s1, s2, label = line.rstrip("\n").split("\t")
            rows.append({"id": f"pawsx-en-{i}", "language": "en", "sentence1": s1, "sentence2": s2,
                         "label": int(label)})
    return rows


def panx_rows(data_dir, n=30):
    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    rows, toks, tags = [], [], []
    with open(data_dir / "xtreme/panx/train-en.tsv", encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                if toks:
                    rows.append({"id": f"panx-en-{len(rows)}", "language": "en", "tokens": toks, "tags": tags})
                    toks, tags = [], []
                    if len(rows) == n:
                        break
                continue
            word, tag = line.split("\t")
            toks.append(word)
            tags.append(names.index(tag))
    return rows, names


def xquad_rows(data_dir, n=6):
    data = json.loads((data_dir / "xtreme/xquad/xquad.en.json").read_text(encoding="utf-8"))["data"]
    rows = []
    for art in data:
        for para in art["paragraphs"]:
            for qa in para["qas"]:
                rows.append({"id": qa["id"], "language": "en", "context": para["context"], "question": qa["question"],
                             "answers": {"text": [a["text"] for a in qa["answers"]],
                                         "answer_start": [a["answer_start"] for a in qa["answers"]]}})
                if len(rows) == n:
                    return rows
    return rows


def siqa_rows(data_dir, n=20):
    rows = []
    with open(data_dir / "extra/siqa/socialIQa_v1.4_dev.jsonl", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i == n:
                break
            r = json.loads(line)
            rows.append({"id": f"siqa-{i}", "language": "en", "context": r["context"], "question": r["question"],
                         "choices": [r["answerA"], r["answerB"], r["answerC"]], "label": "ABC".index(r["correct"])})
    return rows


# ----------------------------------------------------------------------------- tiny tokenizer

def build_tokenizer(data_dir, vocab_size=600):
    """A small XLM-R-like SentencePiece-Unigram tokenizer (<s>=0 <pad>=1 </s>=2 <unk>=3)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast
    texts = [t for r in pawsx_rows(data_dir, 200) for t in (r["sentence1"], r["sentence2"])]
    texts += [r["context"] + " " + r["question"] for r in xquad_rows(data_dir, 30)]
    texts += [" ".join(r["tokens"]) for r in panx_rows(data_dir, 100)[0]]
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator(texts, trainer=trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                                   unk_token="<unk>"))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", cls_token="<s>",
                                   sep_token="</s>", pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
                                   model_input_names=["input_ids", "attention_mask"])


@pytest.fixture(scope="module")
def tok(data_dir):
    return build_tokenizer(data_dir)


# ----------------------------------------------------------------------------- PAIR

def test_pair_features_match_tokenizer_and_labels(data_dir, tok, tmp_path):
    rows = pawsx_rows(data_dir)
    feats = featurize(make_dataset(PAIR, rows), PAIR, tok, max_seq_length=96, cache_dir=tmp_path)
    assert set(feats.column_names) == {"input_ids", "attention_mask", "labels", "length", "example_id"}
    assert feats["labels"] == [r["label"] for r in rows]
    assert feats["example_id"] == [r["id"] for r in rows]
    for r, f in zip(rows, feats):
        expected = tok(r["sentence1"], r["sentence2"], truncation=True, max_length=96)["input_ids"]
        assert f["input_ids"] == expected
        assert f["length"] == len(f["input_ids"]) == len(f["attention_mask"]) <= 96
        assert set(f["attention_mask"]) == {1}
    assert max(feats["length"]) == 96 and min(feats["length"]) < 96   # some rows truncated, none padded


# ----------------------------------------------------------------------------- TAGGING

def test_tagging_labels_only_first_subtoken(data_dir, tok, tmp_path):
    rows, _ = panx_rows(data_dir)
    feats = featurize(make_dataset(TAGGING, rows), TAGGING, tok, max_seq_length=128, cache_dir=tmp_path)
    multi_piece_words = 0
    for r, f in zip(rows, feats):
        assert f["num_words"] == len(r["tokens"])
        assert len(f["labels"]) == len(f["input_ids"]) == len(f["word_ids"]) == f["length"]
        assert f["word_ids"][0] == -1 and f["word_ids"][-1] == -1
        assert f["labels"][0] == IGNORE_INDEX and f["labels"][-1] == IGNORE_INDEX
        seen = set()
        for pos, (w, lab) in enumerate(zip(f["word_ids"], f["labels"])):
            if w >= 0 and w not in seen:
                seen.add(w)
                assert lab == r["tags"][w]
            else:
                assert lab == IGNORE_INDEX
                multi_piece_words += w >= 0
        if f["length"] < 128:   # untruncated: every word got a labelled first piece
            assert seen == set(range(len(r["tokens"])))
    assert multi_piece_words > 50   # the tiny vocabulary really splits words


def test_skip_boundary_pieces_moves_a_word_to_its_first_content_piece():
    from xfer_nb.featurize import skip_boundary_pieces
    # <s> ▁ 韩国 ▁我 ▁ 的 ▁ </s>: words 0 and 2 start with the bare piece (id 6); word 3 is only it
    ids = [0, 6, 100, 101, 6, 102, 6, 2]
    wids = [None, 0, 0, 1, 2, 2, 3, None]
    assert skip_boundary_pieces(ids, wids, 6) == [None, None, 0, 1, None, 2, 3, None]
    assert skip_boundary_pieces(ids, wids, None) == wids   # no such piece in the vocabulary: unchanged


def test_tagging_word_token_option_is_checked_and_keyed(data_dir, tok, tmp_path):
    rows, _ = panx_rows(data_dir, 5)
    with pytest.raises(ValueError, match=r"word_token='last' is not allowed; use one of \('first', 'first_content'\)"):
        featurize(make_dataset(TAGGING, rows), TAGGING, tok, word_token="last", cache_dir=False)
    from xfer_nb.featurize import cache_key_parts
    first = cache_key_parts(None, TAGGING, tok, 128, 128, 64, True)
    assert "word_token" not in first   # the default keeps the keys of entries made before the option
    assert cache_key_parts(None, TAGGING, tok, 128, 128, 64, True, "first_content") != first


def test_tagging_truncation_keeps_word_count(data_dir, tok, tmp_path):
    rows, _ = panx_rows(data_dir)
    feats = featurize(make_dataset(TAGGING, rows), TAGGING, tok, max_seq_length=12, cache_dir=tmp_path)
    assert max(feats["length"]) == 12
    truncated = [f for f in feats if max(f["word_ids"]) + 1 < f["num_words"]]
    assert truncated, "some PAN-X sentences are longer than 10 pieces"
    for f in truncated:
        assert sum(lab != IGNORE_INDEX for lab in f["labels"]) <= max(f["word_ids"]) + 1


# ----------------------------------------------------------------------------- QA

def test_qa_training_windows_locate_answer(data_dir, tok, tmp_path):
    rows = xquad_rows(data_dir)
    ds = make_dataset(QA, rows)
    train = featurize(ds, QA, tok, max_seq_length=128, doc_stride=32, max_query_length=24, cache_dir=tmp_path)
    assert {"start_positions", "end_positions", "example_id", "length"} <= set(train.column_names)
    assert "offset_mapping" not in train.column_names
    assert len(train) > 2 * len(rows)   # long contexts → several windows per example
    ev = featurize(ds, QA, tok, max_seq_length=128, doc_stride=32, max_query_length=24, for_training=False,
                   cache_dir=tmp_path)
    assert len(ev) == len(train) and ev["example_id"] == train["example_id"]
    by_id = {r["id"]: r for r in rows}
    found = set()
    for f, g in zip(train, ev):
        assert f["length"] <= 128 and g["input_ids"] == f["input_ids"]
        r = by_id[f["example_id"]]
        assert g["context"] == r["context"]
        offs = g["offset_mapping"]
        assert offs[0] is None and offs[-1] is None     # specials and question are not context
        s, e = f["start_positions"], f["end_positions"]
        if s == 0:
            assert e == 0
            continue
        found.add(f["example_id"])
        span = r["context"][offs[s][0]:offs[e][1]]
        assert span.strip() == r["answers"]["text"][0]
    assert found == set(by_id)   # each answer lies wholly inside at least one window


def test_qa_windows_overlap_by_stride_and_question_is_cut(data_dir, tok, tmp_path):
    row = dict(xquad_rows(data_dir, 1)[0])
    row["question"] = " ".join([row["question"]] * 20)   # far beyond max_query_length
    ev = featurize(make_dataset(QA, [row]), QA, tok, max_seq_length=96, doc_stride=16, max_query_length=20,
                   for_training=False, cache_dir=tmp_path)
    assert len(ev) >= 3
    spans = []
    for f in ev:
        ctx_idx = [k for k, o in enumerate(f["offset_mapping"]) if o is not None]
        # <s> + question(<=20) + </s></s> before the context
        assert ctx_idx[0] <= 1 + 20 + 2
        spans.append((f["offset_mapping"][ctx_idx[0]][0], f["offset_mapping"][ctx_idx[-1]][1], ctx_idx))
    for (s0, e0, idx0), (s1, e1, _) in zip(spans, spans[1:]):
        assert s0 < s1 < e0 < e1                        # consecutive windows overlap and advance
    assert spans[0][0] == 0 and spans[-1][1] == len(row["context"].rstrip())


# ----------------------------------------------------------------------------- MULTIPLE_CHOICE

def test_multiple_choice_one_pair_per_choice(data_dir, tok, tmp_path):
    rows = siqa_rows(data_dir)
    feats = featurize(make_dataset(MULTIPLE_CHOICE, rows), MULTIPLE_CHOICE, tok, max_seq_length=64,
                      cache_dir=tmp_path)
    assert feats["labels"] == [r["label"] for r in rows]
    for r, f in zip(rows, feats):
        assert len(f["input_ids"]) == len(r["choices"]) == len(f["attention_mask"]) == 3
        for choice, ids in zip(r["choices"], f["input_ids"]):
            assert ids == tok(r["context"], r["question"] + " " + choice, truncation=True, max_length=64)["input_ids"]
        assert f["length"] == max(len(c) for c in f["input_ids"])


# ----------------------------------------------------------------------------- cache

def test_cache_hit_and_miss(data_dir, tok, tmp_path, monkeypatch):
    rows = pawsx_rows(data_dir)
    first = featurize(make_dataset(PAIR, rows), PAIR, tok, max_seq_length=64, cache_dir=tmp_path)
    entries = sorted(p.name for p in tmp_path.iterdir())
    assert len(entries) == 1 and entries[0].startswith(PAIR + "-")

    # a rerun on equal data made afresh (another Dataset object) loads the cached entry: no map
    def no_map(*a, **k):
        raise AssertionError("featurize re-tokenised although the cache holds this entry")
    with monkeypatch.context() as m:
        m.setattr(datasets.Dataset, "map", no_map)
        t0 = time.perf_counter()
        again = featurize(make_dataset(PAIR, rows), PAIR, tok, max_seq_length=64, cache_dir=tmp_path)
        elapsed = time.perf_counter() - t0
    assert again.to_dict() == first.to_dict()
    assert elapsed < 2.0
    assert again.cache_files and str(tmp_path) in again.cache_files[0]["filename"]   # memory-mapped from the cache

    # a changed setting, tokenizer or data makes a new entry
    featurize(make_dataset(PAIR, rows), PAIR, tok, max_seq_length=32, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2
    featurize(make_dataset(PAIR, rows[:-1]), PAIR, tok, max_seq_length=64, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 3
    changed = [dict(r) for r in rows]
    changed[5]["sentence2"] += " !"
    featurize(make_dataset(PAIR, changed), PAIR, tok, max_seq_length=64, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 4
    other_tok = build_tokenizer(data_dir, vocab_size=400)
    featurize(make_dataset(PAIR, rows), PAIR, other_tok, max_seq_length=64, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 5
    # QA-only settings still count: doc_stride and for_training
    qa = make_dataset(QA, xquad_rows(data_dir, 2))
    featurize(qa, QA, tok, max_seq_length=96, doc_stride=16, max_query_length=20, cache_dir=tmp_path)
    featurize(qa, QA, tok, max_seq_length=96, doc_stride=24, max_query_length=20, cache_dir=tmp_path)
    featurize(qa, QA, tok, max_seq_length=96, doc_stride=24, max_query_length=20, for_training=False,
              cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 8
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temporary leftovers


# ----------------------------------------------------------------------------- collate / used ids

def test_collate_pads_dynamically(data_dir, tok, tmp_path):
    pair = featurize(make_dataset(PAIR, pawsx_rows(data_dir, 8)), PAIR, tok, max_seq_length=128, cache_dir=False)
    batch = collate([pair[i] for i in range(8)], tok.pad_token_id)
    longest = max(pair["length"])
    assert batch["input_ids"].shape == (8, longest) and batch["input_ids"].dtype == torch.long
    assert batch["attention_mask"].sum(1).tolist() == pair["length"]
    assert batch["labels"].tolist() == pair["labels"]
    short = int(np.argmin(pair["length"]))
    assert (batch["input_ids"][short, pair["length"][short]:] == tok.pad_token_id).all()

    rows, _ = panx_rows(data_dir, 6)
    tag = featurize(make_dataset(TAGGING, rows), TAGGING, tok, cache_dir=False)
    tb = collate(list(tag), tok.pad_token_id)
    assert tb["labels"].shape == tb["input_ids"].shape == (6, max(tag["length"]))
    for i, n in enumerate(tag["length"]):
        assert (tb["labels"][i, n:] == IGNORE_INDEX).all()
        assert tb["labels"][i, :n].tolist() == tag[i]["labels"]
    assert set(tb) == {"input_ids", "attention_mask", "labels"}   # word_ids, length, ... are left out

    mc = featurize(make_dataset(MULTIPLE_CHOICE, siqa_rows(data_dir, 4)), MULTIPLE_CHOICE, tok, cache_dir=False)
    feats = list(mc)
    feats[1] = {k: (v[:2] if k in ("input_ids", "attention_mask") else v) for k, v in feats[1].items()}
    mb = collate(feats, tok.pad_token_id)
    assert mb["input_ids"].shape == (4, 3, max(mc["length"]))
    assert mb["choice_mask"].tolist()[1] == [True, True, False]
    assert mb["attention_mask"][1, 2].tolist()[0] == 1 and mb["attention_mask"][1, 2].sum() == 1
    assert "choice_mask" not in collate(list(mc), tok.pad_token_id)


def test_used_token_ids(data_dir, tok):
    pair = featurize(make_dataset(PAIR, pawsx_rows(data_dir, 10)), PAIR, tok, cache_dir=False)
    mc = featurize(make_dataset(MULTIPLE_CHOICE, siqa_rows(data_dir, 5)), MULTIPLE_CHOICE, tok, cache_dir=False)
    expected = {i for ids in pair["input_ids"] for i in ids} | {i for ch in mc["input_ids"] for c in ch for i in c}
    got = used_token_ids(pair, mc)
    assert got == expected
    assert tok.cls_token_id in got and tok.pad_token_id not in got
    assert used_token_ids(pair.select([0])) == set(pair[0]["input_ids"])   # respects a selection
