"""Every task loads from the real data folder, with the counts SOURCES.md states."""
from collections import Counter

import pytest

from xfer_nb import tasks
from xfer_nb.tasks import NO_LABEL, TASKS, load
from xfer_nb.tasks.schema import FEATURES

TARGETS = ["xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa", "tatoeba", "bucc2018"]
INTERMEDIATE_ONLY = ["anli", "americasnli", "myxnli", "siqa", "cosmosqa", "xcopa", "mnli", "squad"]
HUB_ONLY = ["qqp", "squad_v2", "hellaswag", "commonsenseqa"]


def _labels(ds):
    return Counter(ds["label"])


def test_registry_lists_every_task_once():
    assert set(TASKS) == set(TARGETS + INTERMEDIATE_ONLY + HUB_ONLY)
    assert set(tasks.TARGET_TASKS) == set(TARGETS)
    for name in HUB_ONLY:
        assert TASKS[name].sources == ("hub",)
    for name in ("mnli", "squad"):
        assert TASKS[name].sources == ("local", "hub")
    assert TASKS["udpos"].metrics == ("pos_f1", "accuracy")
    assert TASKS["panx"].metrics == ("span_f1",)
    assert TASKS["xquad"].metrics == ("exact_match", "f1")
    assert TASKS["bucc2018"].primary_metric == "f1"
    assert TASKS["tatoeba"].primary_metric == "accuracy"


def test_every_local_task_has_its_eval_and_training_splits_on_disk(data_dir):
    for name, spec in TASKS.items():
        if "local" not in spec.sources:
            continue
        splits = tasks.available(name, data_dir=data_dir)
        if spec.eval_split["local"] is None:   # an intermediate pool without an evaluation split
            assert spec.role == "intermediate" and spec.intermediate_split["local"], name
        else:
            assert spec.eval_split["local"] in splits, name
            assert tasks.has_labels(name, spec.eval_split["local"]), name
        if spec.intermediate_split.get("local"):
            assert spec.intermediate_split["local"] in splits, name
        training = tasks.target_training(name) if spec.role == "target" else None
        if training:
            train_task, language, split = training
            assert language in tasks.available(train_task, data_dir=data_dir)[split], name
    assert tasks.target_training("xquad") == tasks.target_training("mlqa") == ("squad", "en", "train")  # as XTREME
    assert tasks.target_training("tydiqa") == ("tydiqa", "en", "train")
    assert tasks.target_training("xnli") == ("myxnli", "en", "test")
    assert tasks.target_training("tatoeba") is None


def test_xnli_dev_is_balanced_and_parallel(data_dir):
    assert len(tasks.available("xnli", data_dir=data_dir)["dev"]) == 15
    sw, en = load("xnli", "sw", "dev", data_dir=data_dir), load("xnli", "en", "dev", data_dir=data_dir)
    assert sw.features == FEATURES["pair_classification"]
    assert len(sw) == 2490
    assert _labels(sw) == {0: 830, 1: 830, 2: 830}
    assert sw["id"] == en["id"] and sw["label"] == en["label"]
    assert sw[0]["sentence1"] == "Naye akasema, Mama, niko nyumbani."
    assert sw[0]["label"] == TASKS["xnli"].label_names.index("neutral")


def test_myxnli_english_test_is_xnli_test_not_dev(data_dir):
    en_test = load("myxnli", "en", "test", data_dir=data_dir)
    en_dev = load("myxnli", "en", "dev", data_dir=data_dir)
    xnli_dev = load("xnli", "en", "dev", data_dir=data_dir)
    assert len(en_test) == 5010 and _labels(en_test) == {0: 1670, 1: 1670, 2: 1670}
    same = sum(a == b for a, b in zip(en_dev["sentence1"], xnli_dev["sentence1"]))
    assert same >= 2480  # the same XNLI dev pairs (a few differ in whitespace)
    assert not set(en_test["sentence1"]) & set(xnli_dev["sentence1"])  # training never sees dev premises
    for lang in ("sw", "ur", "my"):
        assert len(load("myxnli", lang, "dev", data_dir=data_dir)) == 2490
    assert load("myxnli", "my", "test", data_dir=data_dir)["label"] == en_test["label"]


def test_cached_loads_are_independent_objects(data_dir):
    first = load("pawsx", "en", "dev", data_dir=data_dir)
    first.set_format("numpy")
    second = load("pawsx", "en", "dev", data_dir=data_dir)
    assert second.format["type"] is None and second[0]["label"] == first[0]["label"]


def test_pawsx_dev(data_dir):
    assert tasks.available("pawsx", data_dir=data_dir) == {"dev": ["de", "en", "es", "fr", "ja", "ko", "zh"]}
    for lang in ("en", "ko"):
        ds = load("pawsx", lang, "dev", data_dir=data_dir)
        assert len(ds) == 2000 and set(ds["label"]) == {0, 1}
    assert _labels(load("pawsx", "en", "dev", data_dir=data_dir)) == {0: 1137, 1: 863}


def test_udpos_counts_and_tags(data_dir):
    splits = tasks.available("udpos", data_dir=data_dir)
    assert len(splits["test"]) == 33 and "de" not in splits["test"] and splits["train"] == ["en"]
    yo = load("udpos", "yo", "test", data_dir=data_dir)
    assert len(yo) == 100 and sum(map(len, yo["tokens"])) == 2664
    assert all(len(t) == len(g) for t, g in zip(yo["tokens"], yo["tags"]))
    assert yo[0]["tokens"][:2] == ["Ní", "ìbẹ̀rẹ̀"] and yo[0]["tags"][:2] == [1, 7]  # ADP NOUN
    assert len(load("udpos", "tl", "test", data_dir=data_dir)) == 55
    assert len(load("udpos", "mr", "test", data_dir=data_dir)) == 47
    train = load("udpos", "en", "train", data_dir=data_dir)
    assert len(train) == 21253 and sum(map(len, train["tokens"])) == 375194
    assert {t for tags in train["tags"] for t in tags} == set(range(17))


def test_panx_dev_labelled_and_test_unlabelled(data_dir):
    splits = tasks.available("panx", data_dir=data_dir)
    assert len(splits["dev"]) == 13 and splits["train"] == ["en"]
    sw = load("panx", "sw", "dev", data_dir=data_dir)
    assert len(sw) == 1000
    names = TASKS["panx"].label_names
    assert [names[t] for t in sw[0]["tags"][:3]] == ["B-LOC", "O", "B-LOC"]
    assert sw[0]["tokens"][:3] == ["Khartoum", ",", "Sudan"]
    assert len(load("panx", "jv", "dev", data_dir=data_dir)) == 100
    assert not tasks.has_labels("panx", "test") and tasks.has_labels("panx", "dev")
    with pytest.raises(ValueError, match=r"split='test' has no gold labels.*labelled splits: train, dev"):
        load("panx", "sw", "test", data_dir=data_dir)
    test = load("panx", "sw", "test", data_dir=data_dir, require_labels=False)
    assert len(test) == 1000 and {t for tags in test["tags"] for t in tags} == {NO_LABEL}


def _answers_match(ds):
    return all(row["context"][s:s + len(t)] == t
               for row in ds for t, s in zip(row["answers"]["text"], row["answers"]["answer_start"]))


def test_xquad_parallel_questions(data_dir):
    assert len(tasks.available("xquad", data_dir=data_dir)["test"]) == 12
    en, hi = load("xquad", "en", "test", data_dir=data_dir), load("xquad", "hi", "test", data_dir=data_dir)
    assert len(en) == len(hi) == 1190
    assert en["id"] == hi["id"]
    assert _answers_match(hi) and _answers_match(en)


def test_mlqa_and_tydiqa_counts(data_dir):
    expected = {"ar": 517, "de": 512, "en": 1148, "es": 500, "hi": 507, "vi": 511, "zh": 504}
    assert tasks.available("mlqa", data_dir=data_dir) == {"dev": sorted(expected)}
    for lang in ("hi", "vi"):
        ds = load("mlqa", lang, "dev", data_dir=data_dir)
        assert len(ds) == expected[lang] and _answers_match(ds)
    sizes = {lang: len(load("tydiqa", lang, "train", data_dir=data_dir)) for lang in ("en", "ko", "sw")}
    assert sizes == {"en": 3696, "ko": 1625, "sw": 2755}
    sw = load("tydiqa", "sw", "train", data_dir=data_dir)
    assert len(set(sw["id"])) == len(sw) and _answers_match(sw)


def test_tatoeba_is_laser_line_aligned_with_iso_codes(data_dir):
    langs = tasks.available("tatoeba", data_dir=data_dir)["test"]
    assert len(langs) == 108
    assert {"sw", "zh", "fa", "jv", "arz", "yue", "kab"} <= set(langs)
    assert not {"swh", "cmn", "af", "eu", "kk", "te"} & set(langs)
    sw = load("tatoeba", "sw", "test", data_dir=data_dir)
    source = sw.filter(lambda r: r["side"] == "source")
    target = {r["id"]: r["sentence"] for r in sw if r["side"] == "target"}
    assert len(source) == len(target) == 390
    laser = data_dir / "extra/laser-tatoeba/data/tatoeba/v1"
    eng = (laser / "tatoeba.swh-eng.eng").read_text(encoding="utf-8").split("\n")
    swh = (laser / "tatoeba.swh-eng.swh").read_text(encoding="utf-8").split("\n")
    for i in (0, 200, 389):
        assert source[i]["sentence"] == swh[i] and target[source[i]["gold"]] == eng[i]
    assert load("tatoeba", "swh", "test", data_dir=data_dir)["id"] == sw["id"]  # 3-letter alias
    counts = {l: len(load("tatoeba", l, "test", data_dir=data_dir)) // 2 for l in ("jv", "ta", "ml")}
    assert counts == {"jv": 205, "ta": 307, "ml": 687}


def test_bucc_gold_pairs(data_dir):
    ds = load("bucc2018", "zh", "dev", data_dir=data_dir)
    sides = Counter(ds["side"])
    assert sides == {"source": 8624, "target": 13589}
    gold = [g for g in ds["gold"] if g]
    assert len(gold) == 257
    target_ids = {i for i, s in zip(ds["id"], ds["side"]) if s == "target"}
    assert set(gold) <= target_ids


def test_anli_dev_rounds(data_dir):
    ds = load("anli", "en", "dev", data_dir=data_dir)
    assert len(ds) == 1000 + 1000 + 1198
    assert _labels(ds) == {0: 334 + 334 + 402, 1: 333 + 333 + 400, 2: 333 + 333 + 396}
    assert len(set(ds["id"])) == len(ds)
    # r1 has 1,005 physical lines for 1,000 rows: quoted statements span lines and stay whole
    assert sum("\n" in s for s in ds["sentence2"]) == 7
    assert ds[0]["sentence2"].startswith("Form and meaning")


def test_americasnli_sizes(data_dir):
    splits = tasks.available("americasnli", data_dir=data_dir)
    assert splits["dev"] == ["aym", "bzd", "cni", "gn", "hch", "nah", "oto", "quy", "shp", "tar"]
    dev = {l: len(load("americasnli", l, "dev", data_dir=data_dir)) for l in splits["dev"]}
    assert dev == {"aym": 743, "bzd": 743, "cni": 658, "gn": 743, "hch": 743, "nah": 585, "oto": 222,
                   "quy": 743, "shp": 743, "tar": 743}
    test = [len(load("americasnli", l, "test", data_dir=data_dir)) for l in splits["test"]]
    assert sum(test) == 7486 and min(test) == 738 and max(test) == 750
    oto, aym = load("americasnli", "oto", "dev", data_dir=data_dir), load("americasnli", "aym", "dev", data_dir=data_dir)
    assert set(oto["id"]) <= set(aym["id"])  # the same XNLI items, by id


def test_multiple_choice_tasks(data_dir):
    siqa = load("siqa", "en", "dev", data_dir=data_dir)
    assert len(siqa) == 1954 and len(load("siqa", "en", "test", data_dir=data_dir)) == 2224
    assert set(map(len, siqa["choices"])) == {3} and _labels(siqa) == {0: 643, 1: 654, 2: 657}
    cosmos = load("cosmosqa", "en", "dev", data_dir=data_dir)
    assert len(cosmos) == 2985 and set(map(len, cosmos["choices"])) == {4} and set(cosmos["label"]) == {0, 1, 2, 3}
    assert tasks.available("xcopa", data_dir=data_dir)["dev"] == sorted("en et ht id it qu sw ta th tr vi zh".split())
    for lang in ("sw", "qu"):
        dev = load("xcopa", lang, "dev", data_dir=data_dir)
        assert len(dev) == 100 and _labels(dev) == {0: 55, 1: 45}
        assert set(dev["question"]) <= {"cause", "effect"} and set(map(len, dev["choices"])) == {2}
    assert len(load("xcopa", "en", "train", data_dir=data_dir)) == 400
    with pytest.raises(ValueError, match="no gold labels"):
        load("xcopa", "sw", "test", data_dir=data_dir)
    test = load("xcopa", "sw", "test", data_dir=data_dir, require_labels=False)
    assert len(test) == 500 and set(test["label"]) == {NO_LABEL}


def test_errors_name_the_value_and_list_alternatives(data_dir, tmp_path):
    with pytest.raises(ValueError, match=r"language='xx'.*available: ar, bg, de"):
        load("xnli", "xx", "dev", data_dir=data_dir)
    with pytest.raises(ValueError, match=r"split='train'.*available splits: dev"):
        load("xnli", "en", "train", data_dir=data_dir)
    with pytest.raises(KeyError, match=r"task='nope'.*known tasks: xnli, pawsx"):
        load("nope", "en", "dev", data_dir=data_dir)
    with pytest.raises(ValueError, match=r"task='qqp' has no local data.*hub"):
        load("qqp", "en", "train", data_dir=data_dir)
    with pytest.raises(ValueError, match=r"source='web'.*local, hub"):
        load("xnli", "en", "dev", source="web", data_dir=data_dir)
    with pytest.raises(FileNotFoundError, match=r"task='xnli': no local files"):
        load("xnli", "en", "dev", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load("xnli", "en", "dev", data_dir=tmp_path / "missing")


def test_registry_family_names_are_the_schema_families():
    from xfer_nb.tasks import schema
    assert (tasks.PAIR, tasks.TAGGING, tasks.QA, tasks.MULTIPLE_CHOICE, tasks.RETRIEVAL) == schema.FAMILIES
    assert {spec.family for spec in TASKS.values()} == set(schema.FAMILIES)


def test_inventory_counts_equal_the_parsed_rows(data_dir):
    from xfer_nb.tasks import local
    root = str(data_dir)
    for name in local.FILES:
        for split, langs in tasks.available(name, data_dir=data_dir).items():
            for lang in {langs[0], langs[-1]}:
                rows = local.read(name, root, split, lang)
                parsed = sum(r["side"] == "source" for r in rows) if TASKS[name].family == "retrieval" else len(rows)
                assert local.count(name, root, split, lang) == parsed, (name, split, lang)


# ---------------------------------------------------------------- the larger intermediate pools

def _sources_row(data_dir, local_path: str) -> str:
    """The table row of ../shared/data/SOURCES.md whose local path starts with `local_path`."""
    text = (data_dir / "SOURCES.md").read_text(encoding="utf-8")
    return next(line for line in text.splitlines() if line.startswith(f"| `{local_path}"))


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def test_mnli_pool_is_xnli_extension_in_23_languages_as_sources_md_states(data_dir):
    import re
    row = _sources_row(data_dir, "extra/xnli-extension/")
    per_language = _number(re.search(r"([\d,]+) pairs per language", row).group(1))
    languages = row.split("|")[6].split()
    assert (per_language, len(languages)) == (15_001, 23)
    assert tasks.available("mnli", data_dir=data_dir) == {"train": sorted(languages)}
    assert TASKS["mnli"].parallel and TASKS["mnli"].intermediate_split["local"] == "train"
    en, sw, az = (load("mnli", lang, "train", data_dir=data_dir) for lang in ("en", "sw", "az"))
    assert len(en) == len(sw) == len(az) == per_language
    assert en["id"] == sw["id"] and en["label"] == sw["label"] == az["label"]   # line-aligned translations
    assert _labels(en) == {0: 5100, 1: 4397, 2: 5504}   # "contradictory" read as contradiction
    assert en[0]["sentence1"].startswith("Conceptually cream skimming has two basic dimensions")
    assert TASKS["mnli"].label_names[en[0]["label"]] == "neutral"
    assert not any("\r" in s for s in az["sentence2"][:100])   # az has CRLF line ends
    from xfer_nb.tasks import local
    assert sum(local.count("mnli", str(data_dir), "train", lang) for lang in languages) == 23 * 15_001


def test_squad_train_is_the_local_squad_pool(data_dir):
    import re
    row = _sources_row(data_dir, "extra/squad/")
    questions = _number(re.search(r"([\d,]+) questions", row).group(1))
    assert questions == 87_599
    assert tasks.available("squad", data_dir=data_dir) == {"train": ["en"]}
    squad = load("squad", "en", "train", data_dir=data_dir)
    assert len(squad) == questions and len(set(squad["id"])) == questions
    assert len({i.rsplit("_p", 1)[0] for i in squad["id"]}) == 442   # articles, ids <title>_pNNN_qNN
    assert set(map(len, squad["answers"]["text"][:1000])) == {1}
    assert _answers_match(squad.select(range(0, questions, 97)))


def test_siqa_train_is_the_pool_and_dev_the_evaluation_split(data_dir):
    import re
    row = _sources_row(data_dir, "extra/socialiqa-train-dev/")
    train_rows = _number(re.search(r"train ([\d,]+)", row).group(1))
    assert train_rows == 33_410
    assert TASKS["siqa"].intermediate_split["local"] == "train" and TASKS["siqa"].eval_split["local"] == "dev"
    assert tasks.available("siqa", data_dir=data_dir) == {"train": ["en"], "dev": ["en"], "test": ["en"]}
    train = load("siqa", "en", "train", data_dir=data_dir)
    assert len(train) == train_rows and set(map(len, train["choices"])) == {3}
    labels_file = data_dir / "extra/socialiqa-train-dev/train-labels.lst"
    gold = labels_file.read_text(encoding="utf-8").split()
    assert [str(label + 1) for label in train["label"]] == gold   # 1-based in the file, 0-based here
    assert train[0]["context"].startswith("Cameron decided to have a barbecue")


@pytest.mark.slow
def test_an_xquad_target_run_trains_on_squad_offline(tmp_path):
    """XTREME's protocol: XQuAD (and MLQA) train on SQuAD v1.1; offline, the rebuilt train file.
    A real tiny run: its validation rows are held out of SQuAD train, which the summary names."""
    from xfer_nb import config as C
    from xfer_nb import io, pipeline
    cfg = C.from_dict(C.TargetConfig, dict(model_name_or_path="embedded:tiny-random", target_task="xquad", max_steps=2,
                                           per_device_train_batch_size=4, max_seq_length=128, max_train_examples=16,
                                           eval_steps=1, validation_examples=8, eval_languages=["de"],
                                           max_eval_examples=8, logging_steps=1, seed=0))
    evaluated = pipeline.target(cfg, str(tmp_path), "")
    assert "permutation of squad en train" in evaluated.summary["validation"]
    scored = {r["metric"]: r for r in io.read_jsonl(tmp_path / "metrics.jsonl") if r.get("language") == "de"}
    assert scored["f1"]["task"] == "xquad" and scored["f1"]["n_examples"] == 8
