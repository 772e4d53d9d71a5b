"""The hub mapping, on rows written in each hub dataset's own schema (nothing is
downloaded: tests run with HF_HUB_OFFLINE=1, where loading must fail clearly). The
loading itself, through datasets.load_dataset on local copies of the repositories, is
tested in test_hub_datasets.py."""
import os
import re

import pytest

from xfer_nb import tasks
from xfer_nb.tasks import NO_LABEL, TASKS
from xfer_nb.tasks.hub import HUB, HubUnreachable, hub_available, hub_call, load_hub, map_hub_rows
from xfer_nb.tasks.schema import FEATURES


def test_every_hub_task_has_a_mapping_and_languages():
    hub_tasks = {n for n, s in TASKS.items() if "hub" in s.sources}
    assert hub_tasks == set(HUB)
    assert "myxnli" not in HUB  # local only
    for name in HUB:
        splits = hub_available(name)
        assert TASKS[name].eval_split["hub"] in splits, name
        if TASKS[name].intermediate_split.get("hub"):
            assert TASKS[name].intermediate_split["hub"] in splits, name


def test_hub_calls_use_the_real_names_and_configs():
    calls = {t: [c[:3] for c in hub_call(t, l, s)] for t, l, s in [
        ("xnli", "sw", "train"), ("pawsx", "de", "dev"), ("udpos", "en", "train"), ("panx", "sw", "test"),
        ("tatoeba", "de", "test"), ("bucc2018", "zh", "test"), ("xquad", "ar", "test"), ("mlqa", "ar", "dev"),
        ("tydiqa", "sw", "dev"), ("anli", "en", "train"), ("mnli", "en", "dev"), ("qqp", "en", "train"),
        ("squad_v2", "en", "dev"), ("hellaswag", "en", "train"), ("siqa", "en", "train"), ("cosmosqa", "en", "dev"),
        ("commonsenseqa", "en", "dev"), ("americasnli", "quy", "test"), ("xcopa", "qu", "dev")]}
    assert calls == {
        "xnli": [("facebook/xnli", "sw", "train")],
        "pawsx": [("google-research-datasets/paws-x", "de", "validation")],
        "udpos": [("google/xtreme", "udpos.English", "train")],
        "panx": [("google/xtreme", "PAN-X.sw", "test")],
        "tatoeba": [("google/xtreme", "tatoeba.deu", "validation")],
        "bucc2018": [("google/xtreme", "bucc18.zh", "test")],
        "xquad": [("google/xtreme", "XQuAD.ar", "validation")],
        "mlqa": [("google/xtreme", "MLQA.ar.ar", "validation")],
        "tydiqa": [("google/xtreme", "tydiqa", "validation")],
        "anli": [("facebook/anli", None, f"train_r{r}") for r in (1, 2, 3)],
        "mnli": [("nyu-mll/multi_nli", None, "validation_matched")],
        "qqp": [("nyu-mll/glue", "qqp", "train")],
        "squad_v2": [("rajpurkar/squad_v2", None, "validation")],
        "hellaswag": [("Rowan/hellaswag", None, "train")],
        "siqa": [("lighteval/siqa", None, "train")],          # parquet mirror of allenai/social_i_qa (a script)
        "cosmosqa": [("allenai/cosmos_qa", None, "validation")],  # at its parquet conversion, below
        "commonsenseqa": [("tau/commonsense_qa", None, "validation")],
        "americasnli": [("nala-cub/americas_nli", "quy", "test")],
        "xcopa": [("cambridgeltl/xcopa", "qu", "validation")],
    }
    assert "yo" in hub_available("udpos")["test"] and "yo" not in hub_available("udpos")["train"]


def test_every_hub_call_names_its_revision():
    for task, source in HUB.items():
        split, langs = next(iter(hub_available(task).items()))
        revisions = {call[3] for call in hub_call(task, langs[0], split)}
        assert revisions == {source.revision}, task
        assert re.fullmatch(r"[0-9a-f]{40}|main|refs/convert/parquet", source.revision), (task, source.revision)
    assert hub_call("cosmosqa", "en", "dev")[0][3] == "refs/convert/parquet"
    assert hub_call("siqa", "en", "dev")[0][3] == "54c6a1f8cb6daf4f5abf24a601852612fb35eb25"
    assert hub_call("udpos", "en", "train")[0][3] == hub_call("panx", "en", "train")[0][3]  # one google/xtreme


def test_hub_errors_name_value_and_alternatives():
    with pytest.raises(ValueError, match=r"language='xx'.*available: ar, bg"):
        hub_call("xnli", "xx", "train")
    with pytest.raises(ValueError, match=r"split='train'.*available splits: test"):
        hub_call("xquad", "en", "train")
    with pytest.raises(ValueError, match=r"task='myxnli' has no hub data"):
        tasks.load("myxnli", "sw", "test", source="hub")
    with pytest.raises(ValueError, match=r"split='test' has no gold labels in the hub data"):
        tasks.load("qqp", "en", "test", source="hub")


def test_offline_load_fails_saying_the_hub_is_unreachable(monkeypatch):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    monkeypatch.delenv("XFER_NB_HUB_MIRROR", raising=False)
    with pytest.raises(HubUnreachable, match=r"HF_HUB_OFFLINE=1.*hub is unreachable.*source='local'"):
        load_hub("xnli", "sw", "dev")
    with pytest.raises(FileNotFoundError, match="facebook/anli"):  # through the registry, too
        tasks.load("anli", "en", "dev", source="hub")


def test_nli_rows():
    rows = [{"premise": "P0", "hypothesis": "H0", "label": 0}, {"premise": "P1", "hypothesis": "H1", "label": 2}]
    ds = map_hub_rows("xnli", rows, "sw")
    assert ds.features == FEATURES["pair_classification"]
    assert ds["id"] == ["000000", "000001"] and ds["language"] == ["sw", "sw"] and ds["label"] == [0, 2]
    anli = map_hub_rows("anli", [{"uid": "u1", "premise": "P", "hypothesis": "H", "label": 1, "reason": ""}], "en")
    assert anli[0] == {"id": "u1", "language": "en", "sentence1": "P", "sentence2": "H", "label": 1}
    mnli = map_hub_rows("mnli", [{"promptID": 7, "pairID": "7e", "premise": "P", "hypothesis": "H",
                                  "premise_binary_parse": "", "genre": "fiction", "label": -1}], "en")
    assert mnli[0]["id"] == "7e" and mnli[0]["label"] == NO_LABEL


def test_paraphrase_rows():
    paws = map_hub_rows("pawsx", [{"id": 3, "sentence1": "A", "sentence2": "B", "label": 1}], "de")
    assert paws[0] == {"id": "3", "language": "de", "sentence1": "A", "sentence2": "B", "label": 1}
    xtreme_paws = map_hub_rows("pawsx", [{"sentence1": "A", "sentence2": "B", "label": "0"}], "de")
    assert xtreme_paws[0]["label"] == 0  # google/xtreme's PAWS-X keeps labels as strings
    qqp = map_hub_rows("qqp", [{"question1": "Q1?", "question2": "Q2?", "label": 1, "idx": 9}], "en")
    assert qqp[0] == {"id": "9", "language": "en", "sentence1": "Q1?", "sentence2": "Q2?", "label": 1}
    assert TASKS["qqp"].label_names[1] == "duplicate"


def test_tagging_rows():
    ud = map_hub_rows("udpos", [{"tokens": ["I", "ran", "."], "pos_tags": [10, 15, 12]}], "en")
    names = TASKS["udpos"].label_names
    assert ud.features == FEATURES["tagging"]
    assert [names[t] for t in ud[0]["tags"]] == ["PRON", "VERB", "PUNCT"]
    panx = map_hub_rows("panx", [{"tokens": ["Nairobi", "ni"], "ner_tags": [5, 0], "langs": ["sw", "sw"]}], "sw")
    assert [TASKS["panx"].label_names[t] for t in panx[0]["tags"]] == ["B-LOC", "O"]


def test_qa_rows():
    squad = {"id": "5733be284776f41900661182", "title": "University_of_Notre_Dame", "context": "It is in 1842.",
             "question": "When?", "answers": {"text": ["1842"], "answer_start": [9]}}
    ds = map_hub_rows("squad", [squad], "en")
    assert ds.features == FEATURES["qa"]
    assert ds[0]["answers"] == {"text": ["1842"], "answer_start": [9]} and ds[0]["id"] == squad["id"]
    unanswerable = {**squad, "id": "x", "answers": {"text": [], "answer_start": []}}
    assert map_hub_rows("squad_v2", [unanswerable], "en")[0]["answers"] == {"text": [], "answer_start": []}
    tydi = [{**squad, "id": "swahili-123-0"}, {**squad, "id": "english-456-0"}, {**squad, "id": "swahili-789-1"}]
    assert map_hub_rows("tydiqa", tydi, "sw")["id"] == ["swahili-123-0", "swahili-789-1"]


def test_multiple_choice_rows():
    siqa = map_hub_rows("siqa", [{"context": "C", "question": "Q", "answerA": "a", "answerB": "b", "answerC": "c",
                                  "label": "3"}], "en")
    assert siqa.features == FEATURES["multiple_choice"]
    assert siqa[0]["choices"] == ["a", "b", "c"] and siqa[0]["label"] == 2
    cosmos = map_hub_rows("cosmosqa", [{"id": "c1", "context": "C", "question": "Q", "answer0": "w", "answer1": "x",
                                        "answer2": "y", "answer3": "z", "label": 1}], "en")
    assert cosmos[0]["choices"] == ["w", "x", "y", "z"] and cosmos[0]["label"] == 1 and cosmos[0]["id"] == "c1"
    hella = map_hub_rows("hellaswag", [{"ind": 4, "activity_label": "Cooking", "ctx_a": "A", "ctx_b": "b",
                                        "ctx": "A b", "endings": ["e0", "e1", "e2", "e3"], "source_id": "s",
                                        "split": "val", "split_type": "indomain", "label": "2"},
                                       {"ind": 5, "ctx": "C", "endings": ["0", "1", "2", "3"], "label": ""}], "en")
    assert hella["label"] == [2, NO_LABEL] and hella[0]["context"] == "A b" and hella[0]["id"] == "4"
    csqa = map_hub_rows("commonsenseqa", [{"id": "q1", "question": "Where?", "question_concept": "x",
                                           "choices": {"label": ["A", "B", "C", "D", "E"],
                                                       "text": ["a", "b", "c", "d", "e"]},
                                           "answerKey": "D"}], "en")
    assert csqa[0]["choices"] == ["a", "b", "c", "d", "e"] and csqa[0]["label"] == 3 and csqa[0]["context"] == ""
    xcopa = map_hub_rows("xcopa", [{"premise": "P", "choice1": "c1", "choice2": "c2", "question": "cause",
                                    "label": 1, "idx": 17, "changed": False}], "qu")
    assert xcopa[0] == {"id": "17", "language": "qu", "context": "P", "question": "cause",
                        "choices": ["c1", "c2"], "label": 1}


def test_retrieval_rows():
    tatoeba = [{"source_sentence": "Hallo.\n", "target_sentence": "Hello.\n", "source_lang": "deu", "target_lang": "eng"},
               {"source_sentence": "Danke.\n", "target_sentence": "Thanks.\n", "source_lang": "deu", "target_lang": "eng"}]
    ds = map_hub_rows("tatoeba", tatoeba, "de")
    assert ds.features == FEATURES["retrieval"]
    source = [r for r in ds if r["side"] == "source"]
    target = {r["id"]: r["sentence"] for r in ds if r["side"] == "target"}
    assert [target[r["gold"]] for r in source] == ["Hello.", "Thanks."] and source[1]["sentence"] == "Danke."
    bucc = map_hub_rows("bucc2018", [{"source_sentence": "中文", "target_sentence": "English",
                                      "source_lang": "zh-000000057", "target_lang": "en-000008530"}], "zh")
    assert bucc["id"] == ["zh-000000057", "en-000008530"] and bucc["gold"] == ["en-000008530", ""]


def test_unknown_task_mapping_is_an_error():
    with pytest.raises(KeyError, match="task='wnli'"):
        map_hub_rows("wnli", [], "en")
