"""The hub path through the REAL `datasets.load_dataset`, offline.

Each hub repository that params/xtreme.yaml reads is rebuilt here as a local folder laid
out like the repository: parquet files per config and split (written with pyarrow, in the
dataset's own schema: its columns, ClassLabels and nesting) and a README.md whose YAML
header has the hub's `configs:` and `dataset_info:`. XFER_NB_HUB_MIRROR points
`load_hub` at these folders, so the call under test is the one a connected run makes,
``datasets.load_dataset(<repository>, <config>, split=..., revision=...)``; only the
repository argument becomes the copy's folder. A folder holding only a loading script
stands for a script repository, and must give the script-dataset message.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import datasets
from datasets import ClassLabel, Features, Sequence, Value

from xfer_nb import tasks
from xfer_nb.data import intermediate_pool_size, sample_intermediate
from xfer_nb.tasks import NLI_LABELS, NO_LABEL, PANX_LABELS, UPOS_LABELS, TASKS
from xfer_nb.tasks.schema import FEATURES
from xfer_nb.tasks.hub import (HUB, MIRROR_ENV, PARQUET_EXPORT, HubNotFound, HubScriptDataset, HubSource,
                               HubUnknownConfig, HubUnknownSplit, HubUnreachable, load_hub)

ROOT = Path(__file__).resolve().parents[1]
S, I32 = Value("string"), Value("int32")
SQUAD = Features({"id": S, "title": S, "context": S, "question": S,
                  "answers": Sequence({"text": S, "answer_start": I32})})
XTREME_SQUAD = Features({"id": S, "title": S, "context": S, "question": S,
                         "answers": Sequence({"answer_start": I32, "text": S})})
RETRIEVAL = Features({"source_sentence": S, "target_sentence": S, "source_lang": S, "target_lang": S})
NLI = ClassLabel(names=list(NLI_LABELS))


def _squad_rows(prefix: str, n: int = 2, answered: bool = True) -> list[dict]:
    context = "The library opened in 1842 in Paris."
    return [{"id": f"{prefix}-{i}", "title": "T", "context": context, "question": f"When {i}?",
             "answers": ({"text": ["1842"], "answer_start": [context.index("1842")]} if answered
                         else {"text": [], "answer_start": []})} for i in range(n)]


def _write_repo(root: Path, repo: str, configs: dict[str, tuple[Features, dict[str, list[dict]]]],
                layout: str = "{config}/{split}-00000-of-00001.parquet", readme: bool = True) -> Path:
    """One hub dataset repository: parquet per config and split, and the README header."""
    folder = root / repo
    card_configs, card_infos = [], []
    for config, (features, splits) in configs.items():
        files, sizes = [], []
        for split, rows in splits.items():
            rel = layout.format(config=config, split=split)
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            table = pa.Table.from_pylist(rows, schema=features.arrow_schema)
            pq.write_table(table, folder / rel)
            files.append({"split": split, "path": rel})
            sizes.append({"name": split, "num_bytes": table.nbytes, "num_examples": len(rows)})
        card_configs.append({"config_name": config, "data_files": files})
        card_infos.append({"config_name": config, "features": features._to_yaml_list(),  # datasets' own card writer
                           "splits": sizes, "download_size": sum((folder / f["path"]).stat().st_size for f in files),
                           "dataset_size": sum(x["num_bytes"] for x in sizes)})
    if readme:
        header = yaml.safe_dump({"configs": card_configs, "dataset_info": card_infos}, sort_keys=False,
                                allow_unicode=True)
        (folder / "README.md").write_text(f"---\n{header}---\n\n# {repo} (test copy)\n", encoding="utf-8")
    return folder


def build_mirror(root: Path) -> Path:
    """Copies of every hub repository params/xtreme.yaml reads, a few rows each."""
    pair = lambda p, h, label, **extra: {"premise": p, "hypothesis": h, "label": label, **extra}  # noqa: E731
    xnli = Features({"premise": S, "hypothesis": S, "label": NLI})
    _write_repo(root, "facebook/xnli", {
        lang: (xnli, {"train": [pair(f"{lang} p{i}", f"{lang} h{i}", i % 3) for i in range(6)],
                      "validation": [pair(f"{lang} vp", f"{lang} vh", 1)],
                      "test": [pair(f"{lang} tp{i}", f"{lang} th{i}", 2 - i) for i in range(3)]})
        for lang in ("en", "sw")} | {"de": (xnli, {"train": [pair("p", "h", 0)]})})  # de: no test split
    paws = Features({"id": I32, "sentence1": S, "sentence2": S, "label": ClassLabel(names=["0", "1"])})
    _write_repo(root, "google-research-datasets/paws-x", {
        lang: (paws, {"train": [{"id": i + 1, "sentence1": f"A{i}", "sentence2": f"B{i}", "label": lab}
                                for i, lab in enumerate([1, 0, -1, 1, -1])],
                      "test": [{"id": 9, "sentence1": "C", "sentence2": "D", "label": 0}]})
        for lang in ("en", "de")})
    upos = Features({"tokens": Sequence(S), "pos_tags": Sequence(ClassLabel(names=list(UPOS_LABELS)))})
    panx = Features({"tokens": Sequence(S), "ner_tags": Sequence(ClassLabel(names=list(PANX_LABELS))),
                     "langs": Sequence(S)})
    tydi = {"train": _squad_rows("english-1") + _squad_rows("swahili-2", 1),
            "validation": _squad_rows("swahili-3", 3) + _squad_rows("english-4", 1)}
    _write_repo(root, "google/xtreme", {
        "udpos.English": (upos, {"train": [{"tokens": ["I", "ran", "."], "pos_tags": [10, 15, 12]}]}),
        "udpos.Yoruba": (upos, {"test": [{"tokens": ["Mo", "lọ"], "pos_tags": [10, 15]}]}),
        "PAN-X.en": (panx, {"train": [{"tokens": ["Paris", "is"], "ner_tags": [5, 0], "langs": ["en", "en"]}]}),
        "PAN-X.de": (panx, {"test": [{"tokens": ["Berlin", "ist"], "ner_tags": [5, 0], "langs": ["de", "de"]}]}),
        "XQuAD.ar": (XTREME_SQUAD, {"validation": _squad_rows("xq", 2)}),
        "MLQA.de.de": (XTREME_SQUAD, {"validation": _squad_rows("ml", 1), "test": _squad_rows("mlt", 3)}),
        "tydiqa": (XTREME_SQUAD, tydi),
        "tatoeba.deu": (RETRIEVAL, {"validation": [
            {"source_sentence": "Hallo.\n", "target_sentence": "Hello.\n", "source_lang": "deu", "target_lang": "eng"},
            {"source_sentence": "Danke.\n", "target_sentence": "Thanks.\n", "source_lang": "deu", "target_lang": "eng"}]}),
        "bucc18.zh": (RETRIEVAL, {"test": [{"source_sentence": "中文", "target_sentence": "English",
                                            "source_lang": "zh-000000057", "target_lang": "en-000008530"}]}),
    })
    _write_repo(root, "facebook/anli", {"plain_text": (
        Features({"uid": S, "premise": S, "hypothesis": S, "label": NLI, "reason": S}),
        {f"{s}_r{r}": [{"uid": f"{s}{r}", "premise": "P", "hypothesis": "H", "label": r - 1, "reason": ""}]
         for s in ("train", "dev", "test") for r in (1, 2, 3)})})
    mnli = Features({"promptID": I32, "pairID": S, "premise": S, "premise_binary_parse": S, "premise_parse": S,
                     "hypothesis": S, "hypothesis_binary_parse": S, "hypothesis_parse": S, "genre": S, "label": NLI})
    mnli_row = lambda i, label: {"promptID": i, "pairID": f"{i}e", "premise": "P", "premise_binary_parse": "",  # noqa: E731
                                 "premise_parse": "", "hypothesis": "H", "hypothesis_binary_parse": "",
                                 "hypothesis_parse": "", "genre": "fiction", "label": label}
    _write_repo(root, "nyu-mll/multi_nli", {"default": (mnli, {
        "train": [mnli_row(i, i % 3) for i in range(4)], "validation_matched": [mnli_row(7, 0)],
        "validation_mismatched": [mnli_row(8, 2)]})}, layout="data/{split}-00000-of-00001.parquet")
    qqp = Features({"question1": S, "question2": S, "label": ClassLabel(names=["not_duplicate", "duplicate"]),
                    "idx": I32})
    _write_repo(root, "nyu-mll/glue", {"qqp": (qqp, {
        "train": [{"question1": "Q1?", "question2": "Q2?", "label": 1, "idx": 0}],
        "validation": [{"question1": "Q3?", "question2": "Q4?", "label": 0, "idx": 0}],
        "test": [{"question1": "Q5?", "question2": "Q6?", "label": -1, "idx": 0}]})})
    _write_repo(root, "rajpurkar/squad", {"plain_text": (SQUAD, {"train": _squad_rows("sq", 3),
                                                                 "validation": _squad_rows("sqv", 1)})})
    _write_repo(root, "rajpurkar/squad_v2", {"squad_v2": (SQUAD, {
        "train": _squad_rows("v2", 2) + _squad_rows("v2u", 1, answered=False), "validation": _squad_rows("v2v", 1)})})
    hella = Features({"ind": I32, "activity_label": S, "ctx_a": S, "ctx_b": S, "ctx": S, "endings": Sequence(S),
                      "source_id": S, "split": S, "split_type": S, "label": S})
    hella_row = lambda i, label: {"ind": i, "activity_label": "Cooking", "ctx_a": "A", "ctx_b": "b", "ctx": "A b",  # noqa: E731
                                  "endings": ["e0", "e1", "e2", "e3"], "source_id": "s", "split": "train",
                                  "split_type": "indomain", "label": label}
    _write_repo(root, "Rowan/hellaswag", {"default": (hella, {
        "train": [hella_row(0, "2"), hella_row(1, "0")], "validation": [hella_row(2, "3")],
        "test": [hella_row(3, "")]})}, layout="data/{split}-00000-of-00001.parquet")
    csqa = Features({"id": S, "question": S, "question_concept": S,
                     "choices": Sequence({"label": S, "text": S}), "answerKey": S})
    csqa_row = lambda i, key: {"id": f"q{i}", "question": "Where?", "question_concept": "x",  # noqa: E731
                               "choices": {"label": list("ABCDE"), "text": list("abcde")}, "answerKey": key}
    _write_repo(root, "tau/commonsense_qa", {"default": (csqa, {
        "train": [csqa_row(0, "D")], "validation": [csqa_row(1, "A")], "test": [csqa_row(2, "")]})},
        layout="data/{split}-00000-of-00001.parquet")
    siqa = Features({"context": S, "question": S, "answerA": S, "answerB": S, "answerC": S, "label": S})
    siqa_row = lambda i, label: {"context": f"C{i}", "question": "Q", "answerA": "a", "answerB": "b",  # noqa: E731
                                 "answerC": "c", "label": label}
    _write_repo(root, "lighteval/siqa", {"default": (siqa, {
        "train": [siqa_row(0, "3"), siqa_row(1, "1")], "validation": [siqa_row(2, "2")]})},
        layout="data/{split}-00000-of-00001.parquet")
    # allenai/cosmos_qa at refs/convert/parquet: the hub's converter writes
    # <config>/<split>/0000.parquet and no README `configs:`; datasets infers the splits.
    cosmos = Features({"id": S, "context": S, "question": S, "answer0": S, "answer1": S, "answer2": S,
                       "answer3": S, "label": I32})
    cosmos_row = lambda i, label: {"id": f"c{i}", "context": "C", "question": "Q", "answer0": "w",  # noqa: E731
                                   "answer1": "x", "answer2": "y", "answer3": "z", "label": label}
    _write_repo(root, "allenai/cosmos_qa", {"default": (cosmos, {
        "train": [cosmos_row(0, 1), cosmos_row(1, 3)], "validation": [cosmos_row(2, 0)],
        "test": [cosmos_row(3, -1)]})}, layout="{config}/{split}/0000.parquet", readme=False)
    # nala-cub/americas_nli: no id column; languages of different sizes
    _write_repo(root, "nala-cub/americas_nli", {
        lang: (xnli, {"validation": [pair(f"{lang} p{i}", f"{lang} h{i}", i % 3) for i in range(n)]})
        for lang, n in (("aym", 12), ("nah", 5))})
    # the script-only repository that allenai/social_i_qa still is
    script = root / "allenai" / "social_i_qa"
    script.mkdir(parents=True)
    (script / "social_i_qa.py").write_text("import datasets\n\nclass SocialIQa(datasets.GeneratorBasedBuilder):\n"
                                           "    pass\n")
    return root


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    return build_mirror(tmp_path_factory.mktemp("hub-mirror"))


@pytest.fixture
def hub(mirror, tmp_path, monkeypatch):
    """XFER_NB_HUB_MIRROR set, and datasets' Arrow cache in a fresh temporary folder."""
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    return mirror


def xtreme_hub_tasks() -> set[str]:
    """Every task params/xtreme.yaml reads from the hub: intermediate and target tasks, and
    the tasks that train the targets."""
    axes = yaml.safe_load((ROOT / "params" / "xtreme.yaml").read_text())["axes"]
    names = {part for value in axes["intermediate_task"] if value != "none" for part in value.split("+")}
    names |= set(axes["target_task"])
    names |= {t[0] for t in map(lambda n: tasks.target_training(n, "hub"), axes["target_task"]) if t}
    return names


def test_every_xtreme_hub_source_has_a_copy_here(mirror):
    repos = {HUB[t].path for t in xtreme_hub_tasks()}
    assert repos == {"facebook/xnli", "google-research-datasets/paws-x", "google/xtreme", "facebook/anli",
                     "nyu-mll/multi_nli", "nyu-mll/glue", "rajpurkar/squad", "rajpurkar/squad_v2", "Rowan/hellaswag",
                     "tau/commonsense_qa", "lighteval/siqa", "allenai/cosmos_qa"}
    assert all((mirror / repo).is_dir() for repo in repos)
    assert all(HUB[t].revision for t in HUB)  # every source names its revision
    assert HUB["siqa"].revision == "54c6a1f8cb6daf4f5abf24a601852612fb35eb25"
    assert HUB["cosmosqa"].revision == PARQUET_EXPORT


# One labelled split per xtreme.yaml hub task, through tasks.load -> load_hub -> load_dataset.
LOADS = [
    ("xnli", "sw", "train", 6, {"sentence1": "sw p0", "label": 0}),
    ("pawsx", "de", "train", 3, {"id": "1", "sentence1": "A0", "label": 1}),  # two -1 rows dropped
    ("udpos", "en", "train", 1, {"tokens": ["I", "ran", "."], "tags": [10, 15, 12]}),
    ("udpos", "yo", "test", 1, {"tokens": ["Mo", "lọ"]}),
    ("panx", "de", "test", 1, {"tokens": ["Berlin", "ist"], "tags": [5, 0]}),
    ("xquad", "ar", "test", 2, {"id": "xq-0", "answers": {"text": ["1842"], "answer_start": [22]}}),
    ("mlqa", "de", "test", 3, {"id": "mlt-0"}),
    ("tydiqa", "sw", "dev", 3, {"id": "swahili-3-0"}),
    ("tatoeba", "de", "test", 4, {"side": "source", "sentence": "Hallo.", "gold": "en-000000"}),
    ("bucc2018", "zh", "test", 2, {"id": "zh-000000057", "gold": "en-000008530"}),
    ("anli", "en", "train", 3, {"id": "train1", "label": 0}),
    ("mnli", "en", "dev_mismatched", 1, {"id": "8e", "label": 2}),
    ("qqp", "en", "train", 1, {"sentence1": "Q1?", "label": 1}),
    ("squad", "en", "train", 3, {"id": "sq-0"}),
    ("squad_v2", "en", "train", 3, {"id": "v2-0"}),
    ("hellaswag", "en", "train", 2, {"id": "0", "context": "A b", "label": 2}),
    ("commonsenseqa", "en", "train", 1, {"id": "q0", "choices": ["a", "b", "c", "d", "e"], "label": 3}),
    ("siqa", "en", "train", 2, {"context": "C0", "choices": ["a", "b", "c"], "label": 2}),
    ("cosmosqa", "en", "train", 2, {"id": "c0", "choices": ["w", "x", "y", "z"], "label": 1}),
]


def test_loads_cover_every_xtreme_hub_task():
    assert {t for t, *_ in LOADS} == xtreme_hub_tasks()


@pytest.mark.parametrize("task, language, split, rows, first", LOADS, ids=[f"{t}-{l}-{s}" for t, l, s, *_ in LOADS])
def test_hub_source_loads_through_load_dataset(hub, task, language, split, rows, first):
    ds = tasks.load(task, language, split, source="hub")
    assert len(ds) == rows
    assert ds.features == FEATURES[TASKS[task].family]
    assert set(ds["language"]) <= {language, "en"}
    for key, value in first.items():
        assert ds[0][key] == value, key


def test_load_dataset_is_called_with_the_repository_config_split_and_revision(hub, monkeypatch):
    calls = []
    real = datasets.load_dataset

    def recording(*args, **kw):
        calls.append((args, kw))
        return real(*args, **kw)

    monkeypatch.setattr(datasets, "load_dataset", recording)
    load_hub("siqa", "en", "dev")
    load_hub("panx", "en", "train")
    assert calls == [((str(hub / "lighteval/siqa"), None), {"split": "validation", "revision": HUB["siqa"].revision}),
                     ((str(hub / "google/xtreme"), "PAN-X.en"), {"split": "train", "revision": "main"})]


def test_minus_one_labels_are_dropped_and_counted(hub, caplog):
    with caplog.at_level(logging.WARNING, logger="xfer_nb.tasks.hub"):
        ds = load_hub("pawsx", "en", "train")
    assert ds["label"] == [1, 0, 1] and NO_LABEL not in ds["label"]
    assert "task='pawsx' language='en' split='train' (hub): dropped 2 of 5 rows whose label is -1" in caplog.text
    # an unlabelled split keeps its rows (labels -1) when asked for its inputs
    qqp_test = tasks.load("qqp", "en", "test", source="hub", require_labels=False)
    assert qqp_test["label"] == [NO_LABEL]
    cosmos_test = tasks.load("cosmosqa", "en", "test", source="hub", require_labels=False)
    assert cosmos_test["label"] == [NO_LABEL]


def test_script_repository_gives_the_script_message(hub, monkeypatch):
    """What the siqa source was before this change: allenai/social_i_qa ships a script."""
    monkeypatch.setitem(HUB, "siqa", HubSource("allenai/social_i_qa", lambda l: None,
                                               {"train": ("train",), "dev": ("validation",)},
                                               {"train": ("en",), "dev": ("en",)}, "main"))
    with pytest.raises(HubScriptDataset) as info:
        tasks.load("siqa", "en", "train", source="hub")
    msg = str(info.value)
    assert "task='siqa' language='en' split='train'" in msg
    assert "hub dataset 'allenai/social_i_qa' (config=None, split='train', revision='main')" in msg
    assert "ships a loading script (social_i_qa.py)" in msg and "no longer runs dataset scripts" in msg
    assert "revision='refs/convert/parquet'" in msg and "parquet mirror" in msg
    assert "Dataset scripts are no longer supported" in msg  # datasets' own words, as the cause


def test_unknown_config_names_the_configs_there_are(hub):
    with pytest.raises(HubUnknownConfig) as info:
        load_hub("panx", "sw", "test")  # the copy has PAN-X.en and PAN-X.de only
    msg = str(info.value)
    assert "task='panx' language='sw' split='test'" in msg and "'google/xtreme' (config='PAN-X.sw'" in msg
    assert "has no config 'PAN-X.sw'" in msg and "'PAN-X.de'" in msg and "Fix the config of HUB['panx']" in msg


def test_unknown_split_names_the_splits_there_are(hub):
    with pytest.raises(HubUnknownSplit) as info:
        load_hub("xnli", "de", "test")  # the copy's de config has a train split only
    msg = str(info.value)
    assert "task='xnli' language='de' split='test'" in msg and "config 'de' has no split 'test'" in msg
    assert "['train']" in msg and "HUB['xnli']" in msg


def test_offline_without_a_copy_says_the_hub_is_unreachable(monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    with pytest.raises(HubUnreachable) as info:
        load_hub("squad", "en", "dev")
    msg = str(info.value)
    assert "task='squad' language='en' split='dev'" in msg and "'rajpurkar/squad'" in msg
    assert "HF_HUB_OFFLINE=1" in msg and MIRROR_ENV in msg and "source='local'" in msg


def test_a_mirror_without_the_repository_says_which_folder_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path))
    with pytest.raises(HubNotFound, match=r"has no copy of the hub dataset 'facebook/anli'.*revision 'main'"):
        load_hub("anli", "en", "dev")


def test_hub_americasnli_is_not_parallel_and_samples_every_language_pool(hub):
    assert tasks.is_parallel("americasnli", "local") and not tasks.is_parallel("americasnli", "hub")
    assert tasks.is_parallel("xnli", "hub")
    nah = tasks.load("americasnli", "nah", "dev", source="hub")
    assert nah["id"] == [f"{i:06d}" for i in range(5)]  # no id column: row indices, which do not align
    # aligned by index, the 17 rows would be dealt as 12 items over two languages (at most 12
    # examples); not parallel, each language keeps its own rows: 5 + 5 fit an even split
    assert intermediate_pool_size("americasnli", ["aym", "nah"], source="hub") == 11
    sample = sample_intermediate("americasnli", ["aym", "nah"], 10, seed=0, source="hub")
    assert sample["language"].count("aym") == 5 and sample["language"].count("nah") == 5
    assert sorted(sample.filter(lambda r: r["language"] == "nah")["sentence1"]) == [f"nah p{i}" for i in range(5)]
