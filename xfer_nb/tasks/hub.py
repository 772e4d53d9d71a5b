"""The Hugging Face hub source: which hub dataset, revision, config and split hold each
task, and a pure mapping from each hub dataset's own columns to the task family's schema.

`HUB` is the documented table (`hub_available` reads languages and splits from it, so
nothing is fetched to list them). Every source names the repository `revision` it reads:
a commit where one was verified from public records, else the branch it was checked on
(see each row's comment). `load_hub` makes exactly one kind of call per hub split,
``datasets.load_dataset(repository, config, split=..., revision=...)``, and maps the rows
with `map_hub_rows`, which is pure.

Two hub sources changed because `datasets` >= 4 refuses loading scripts ("Dataset scripts
are no longer supported"; `datasets/load.py`, no fallback) and their repositories still
ship one: SocialIQa reads the parquet mirror `lighteval/siqa` (same columns, its label
"1".."3"; content-identical to `allenai/social_i_qa`, hash-checked in
EleutherAI/lm-evaluation-harness PR #3943), and CosmosQA reads the hub's own parquet
conversion of `allenai/cosmos_qa` (revision ``refs/convert/parquet``).

`XFER_NB_HUB_MIRROR` names a folder holding copies of hub repositories at their pinned
revisions, one folder per repository id (``<mirror>/google/xtreme/``, made for example
with ``huggingface-cli download --repo-type dataset google/xtreme --revision <rev>
--local-dir <mirror>/google/xtreme``). When it is set, the same `load_dataset` call reads
the copy instead of the hub: for machines without a network, and for the tests, which
build such copies (parquet files plus the README's `configs:` header) in each dataset's
own schema. Failures are reported by kind: hub unreachable (`HubUnreachable`), loading
script refused (`HubScriptDataset`), unknown config (`HubUnknownConfig`), unknown split
(`HubUnknownSplit`), repository or revision not found (`HubNotFound`).
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from xfer_nb.tasks.registry import NO_LABEL, TASKS, env_offline, get, has_labels
from xfer_nb.tasks.schema import make_dataset

log = logging.getLogger(__name__)

MIRROR_ENV = "XFER_NB_HUB_MIRROR"
PARQUET_EXPORT = "refs/convert/parquet"  # the hub's own parquet conversion of a repository


class HubError(Exception):
    """A hub source could not be loaded; the message names the dataset, config, split and
    revision, what happened and what to do."""


class HubUnreachable(HubError, FileNotFoundError):
    """The hub dataset is neither in the local cache nor reachable (e.g. HF_HUB_OFFLINE=1).

    A FileNotFoundError so callers (and `xfer-nb data`) treat it like missing local data."""


class HubScriptDataset(HubError, RuntimeError):
    """The repository (at that revision) ships a loading script, which `datasets` refuses."""


class HubUnknownConfig(HubError, ValueError):
    """The repository has no config of that name."""


class HubUnknownSplit(HubError, ValueError):
    """The config has no split of that name."""


class HubNotFound(HubError, FileNotFoundError):
    """The repository, or the revision asked for, does not exist (or is gated)."""


@dataclass(frozen=True)
class HubSource:
    """path: the hub dataset repository; config: its config name for a language (None: no
    config); splits: our split -> the hub split(s) concatenated into it; languages: per our
    split; revision: the repository revision read (a commit, a branch or the parquet
    export ref); parallel: whether rows with the same id are translations of each other
    across languages here (None: as the task registry says)."""

    path: str
    config: Callable[[str], str | None]
    splits: dict[str, tuple[str, ...]]
    languages: dict[str, tuple[str, ...]]
    revision: str = "main"
    parallel: bool | None = None


def _same(langs: str, splits: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    return {s: tuple(langs.split()) for s in splits}


_TRAIN_DEV_TEST = {"train": ("train",), "dev": ("validation",), "test": ("test",)}
_TRAIN_DEV = {"train": ("train",), "dev": ("validation",)}
_DEV_TEST = {"dev": ("validation",), "test": ("test",)}

XNLI_LANGS = "ar bg de el en es fr hi ru sw th tr ur vi zh"
PAWSX_LANGS = "de en es fr ja ko zh"
# google/xtreme names its UD-POS configs by language name (XTREME's 33 languages).
UDPOS_NAMES = {
    "af": "Afrikaans", "ar": "Arabic", "eu": "Basque", "bg": "Bulgarian", "nl": "Dutch", "en": "English",
    "et": "Estonian", "fi": "Finnish", "fr": "French", "de": "German", "el": "Greek", "he": "Hebrew",
    "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese", "kk": "Kazakh",
    "ko": "Korean", "zh": "Chinese", "mr": "Marathi", "fa": "Persian", "pt": "Portuguese", "ru": "Russian",
    "es": "Spanish", "tl": "Tagalog", "ta": "Tamil", "te": "Telugu", "th": "Thai", "tr": "Turkish",
    "ur": "Urdu", "vi": "Vietnamese", "yo": "Yoruba",
}
_UDPOS_TEST_ONLY = {"tl", "th", "yo"}  # UD v2.5 has only test data for these; Kazakh has no dev
PANX_LANGS = ("af ar bg bn de el en es et eu fa fi fr he hi hu id it ja jv ka kk ko ml mr ms my nl pt ru "
              "sw ta te th tl tr ur vi yo zh")
XQUAD_LANGS = "ar de el en es hi ru th tr vi zh"  # google/xtreme's XQuAD (no Romanian)
MLQA_LANGS = "ar de en es hi vi zh"
# google/xtreme's tydiqa config mixes languages; ids start with the language's English name.
TYDIQA_NAMES = {"ar": "arabic", "bn": "bengali", "en": "english", "fi": "finnish", "id": "indonesian",
                "ko": "korean", "ru": "russian", "sw": "swahili", "te": "telugu"}
# google/xtreme's Tatoeba configs (3-letter LASER codes), keyed here by our 2-letter codes.
TATOEBA_CODES = {
    "af": "afr", "ar": "ara", "bn": "ben", "bg": "bul", "de": "deu", "zh": "cmn", "el": "ell", "et": "est",
    "eu": "eus", "fi": "fin", "fr": "fra", "he": "heb", "hi": "hin", "hu": "hun", "id": "ind", "it": "ita",
    "jv": "jav", "ja": "jpn", "ka": "kat", "kk": "kaz", "ko": "kor", "ml": "mal", "mr": "mar", "nl": "nld",
    "fa": "pes", "pt": "por", "ru": "rus", "es": "spa", "sw": "swh", "ta": "tam", "te": "tel", "tl": "tgl",
    "th": "tha", "tr": "tur", "ur": "urd", "vi": "vie",
}
AMERICASNLI_LANGS = "aym bzd cni gn hch nah oto quy shp tar"
XCOPA_LANGS = "et ht id it qu sw ta th tr vi zh"  # cambridgeltl/xcopa; English COPA is not a config there


def _udpos_languages() -> dict[str, tuple[str, ...]]:
    langs = sorted(UDPOS_NAMES)
    return {"train": tuple(l for l in langs if l not in _UDPOS_TEST_ONLY),
            "dev": tuple(l for l in langs if l not in _UDPOS_TEST_ONLY | {"kk"}),
            "test": tuple(langs)}


# Revisions. Every repository below serves parquet files with a README `configs:` header
# (converted from loading scripts by the hub team in 2024), except the two changed sources
# (SocialIQa, CosmosQA; see the module docstring). A commit is pinned where public records
# name one that loads with datasets >= 4 (lighteval/siqa: pinned in two independent public
# evaluation setups; Rowan/hellaswag and tau/commonsense_qa: pinned as "hub HEAD on
# 2026-09-15" by one). The others read the tip of `main`, named explicitly: no commit could
# be verified without network; `load_hub` logs the commit a load resolved to, to pin here.
XTREME_REVISION = "main"

HUB: dict[str, HubSource] = {
    "xnli": HubSource("facebook/xnli", lambda l: l, _TRAIN_DEV_TEST, _same(XNLI_LANGS, ("train", "dev", "test"))),
    "pawsx": HubSource("google-research-datasets/paws-x", lambda l: l, _TRAIN_DEV_TEST,
                       _same(PAWSX_LANGS, ("train", "dev", "test"))),
    "udpos": HubSource("google/xtreme", lambda l: f"udpos.{UDPOS_NAMES[l]}", _TRAIN_DEV_TEST, _udpos_languages(),
                       XTREME_REVISION),
    "panx": HubSource("google/xtreme", lambda l: f"PAN-X.{l}", _TRAIN_DEV_TEST, _same(PANX_LANGS, ("train", "dev", "test")),
                      XTREME_REVISION),
    "xquad": HubSource("google/xtreme", lambda l: f"XQuAD.{l}", {"test": ("validation",)}, _same(XQUAD_LANGS, ("test",)),
                       XTREME_REVISION),
    "mlqa": HubSource("google/xtreme", lambda l: f"MLQA.{l}.{l}", _DEV_TEST, _same(MLQA_LANGS, ("dev", "test")),
                      XTREME_REVISION),
    "tydiqa": HubSource("google/xtreme", lambda l: "tydiqa", _TRAIN_DEV,
                        _same(" ".join(sorted(TYDIQA_NAMES)), ("train", "dev")), XTREME_REVISION),
    "tatoeba": HubSource("google/xtreme", lambda l: f"tatoeba.{TATOEBA_CODES[l]}", {"test": ("validation",)},
                         _same(" ".join(sorted(TATOEBA_CODES)), ("test",)), XTREME_REVISION),
    "bucc2018": HubSource("google/xtreme", lambda l: f"bucc18.{l}", _DEV_TEST, _same("de fr ru zh", ("dev", "test")),
                          XTREME_REVISION),
    "anli": HubSource("facebook/anli", lambda l: None,
                      {s: tuple(f"{s}_r{r}" for r in (1, 2, 3)) for s in ("train", "dev", "test")},
                      _same("en", ("train", "dev", "test"))),
    # No id column and uneven sizes per language (nah dev 376 vs 743 elsewhere): rows with the
    # same index are not translations of each other, so the hub copy is not parallel.
    "americasnli": HubSource("nala-cub/americas_nli", lambda l: l, _DEV_TEST, _same(AMERICASNLI_LANGS, ("dev", "test")),
                             parallel=False),
    # CHANGED: allenai/social_i_qa ships social_i_qa.py (refused by datasets >= 4); this
    # parquet mirror has the same rows and columns (label "1".."3"), single config "default".
    "siqa": HubSource("lighteval/siqa", lambda l: None, _TRAIN_DEV, _same("en", ("train", "dev")),
                      "54c6a1f8cb6daf4f5abf24a601852612fb35eb25"),
    # CHANGED: allenai/cosmos_qa ships cosmos_qa.py; its parquet conversion by the hub
    # (one "default" config, files default/<split>/0000.parquet) keeps the script's schema.
    "cosmosqa": HubSource("allenai/cosmos_qa", lambda l: None, _TRAIN_DEV_TEST, _same("en", ("train", "dev", "test")),
                          PARQUET_EXPORT),
    "xcopa": HubSource("cambridgeltl/xcopa", lambda l: l, _DEV_TEST, _same(XCOPA_LANGS, ("dev", "test"))),
    "mnli": HubSource("nyu-mll/multi_nli", lambda l: None,
                      {"train": ("train",), "dev": ("validation_matched",), "dev_mismatched": ("validation_mismatched",)},
                      _same("en", ("train", "dev", "dev_mismatched"))),
    "qqp": HubSource("nyu-mll/glue", lambda l: "qqp", _TRAIN_DEV_TEST, _same("en", ("train", "dev", "test"))),
    "squad": HubSource("rajpurkar/squad", lambda l: None, _TRAIN_DEV, _same("en", ("train", "dev"))),
    "squad_v2": HubSource("rajpurkar/squad_v2", lambda l: None, _TRAIN_DEV, _same("en", ("train", "dev"))),
    "hellaswag": HubSource("Rowan/hellaswag", lambda l: None, _TRAIN_DEV_TEST, _same("en", ("train", "dev", "test")),
                           "218ec52e09a7e7462a5400043bb9a69a41d06b76"),
    "commonsenseqa": HubSource("tau/commonsense_qa", lambda l: None, _TRAIN_DEV_TEST,
                               _same("en", ("train", "dev", "test")), "94630fe30dad47192a8546eb75f094926d47e155"),
}


def hub_available(task: str) -> dict[str, list[str]]:
    """{split: languages} of `task` on the hub, from the table above (nothing is fetched)."""
    if task not in HUB:
        raise ValueError(f"task={task!r} has no hub mapping; tasks on the hub: {', '.join(HUB)}")
    return {split: list(langs) for split, langs in HUB[task].languages.items()}


# ---------------------------------------------------------------- row mapping (pure)

def _int_label(value) -> int:
    """A hub label as int: ClassLabel ints pass through, "0"/"1" strings convert, a missing
    label ("" / None / -1, as in unlabelled test splits) becomes -1."""
    if value is None or value == "":
        return NO_LABEL
    return int(value)


def _row_id(row: dict, i: int, *keys: str) -> str:
    for key in keys:
        if row.get(key) not in (None, ""):
            return str(row[key])
    return f"{i:06d}"


def _pairs(rows, language, first, second, *id_keys):
    return [{"id": _row_id(r, i, *id_keys), "language": language, "sentence1": r[first], "sentence2": r[second],
             "label": _int_label(r.get("label"))} for i, r in enumerate(rows)]


def _tags(rows, language, column, names):
    index = {n: k for k, n in enumerate(names)}
    return [{"id": _row_id(r, i, "id"), "language": language, "tokens": list(r["tokens"]),
             "tags": [t if isinstance(t, int) else index[t] for t in r[column]]} for i, r in enumerate(rows)]


def _qa(rows, language):
    out = []
    for i, r in enumerate(rows):
        answers = r.get("answers") or {"text": [], "answer_start": []}
        out.append({"id": _row_id(r, i, "id"), "language": language, "context": r["context"],
                    "question": r["question"],
                    "answers": {"text": list(answers["text"]), "answer_start": [int(a) for a in answers["answer_start"]]}})
    return out


def _mc(id_, language, context, question, choices, label):
    return {"id": id_, "language": language, "context": context, "question": question,
            "choices": list(choices), "label": label}


def _retrieval_pairs(rows, language):
    """google/xtreme tatoeba/bucc18 rows are aligned (source_sentence, target_sentence)
    pairs. bucc18 keeps the BUCC sentence ids in source_lang/target_lang; tatoeba keeps
    language codes there, so its ids are made from the row index."""
    source, target = [], []
    for i, r in enumerate(rows):
        sid, tid = str(r.get("source_lang") or ""), str(r.get("target_lang") or "")
        if not (re.fullmatch(r"[a-z]{2}-\d+", sid) and re.fullmatch(r"en-\d+", tid)):
            sid, tid = f"{language}-{i:06d}", f"en-{i:06d}"
        source.append({"id": sid, "language": language, "side": "source",
                       "sentence": r["source_sentence"].strip(), "gold": tid})
        target.append({"id": tid, "language": "en", "side": "target", "sentence": r["target_sentence"].strip(), "gold": ""})
    return source + target


def _map_rows(task: str, rows: list[dict], language: str) -> list[dict]:
    names = TASKS[task].label_names
    if task in ("xnli", "mnli", "anli", "americasnli"):
        return _pairs(rows, language, "premise", "hypothesis", "uid", "pairID", "id")
    if task == "pawsx":
        return _pairs(rows, language, "sentence1", "sentence2", "id")
    if task == "qqp":
        return _pairs(rows, language, "question1", "question2", "idx")
    if task == "udpos":
        return _tags(rows, language, "pos_tags", names)
    if task == "panx":
        return _tags(rows, language, "ner_tags", names)
    if task == "tydiqa":
        prefix = TYDIQA_NAMES[language] + "-"
        return _qa([r for r in rows if str(r["id"]).startswith(prefix)], language)
    if task in ("xquad", "mlqa", "squad", "squad_v2"):
        return _qa(rows, language)
    if task in ("tatoeba", "bucc2018"):
        return _retrieval_pairs(rows, language)
    if task == "siqa":   # label "1".."3"
        return [_mc(f"{i:06d}", language, r["context"], r["question"], [r["answerA"], r["answerB"], r["answerC"]],
                    _int_label(r["label"]) - 1 if _int_label(r["label"]) > 0 else NO_LABEL) for i, r in enumerate(rows)]
    if task == "cosmosqa":
        return [_mc(_row_id(r, i, "id"), language, r["context"], r["question"], [r[f"answer{k}"] for k in range(4)],
                    _int_label(r.get("label"))) for i, r in enumerate(rows)]
    if task == "xcopa":
        return [_mc(_row_id(r, i, "idx"), language, r["premise"], r["question"], [r["choice1"], r["choice2"]],
                    _int_label(r.get("label"))) for i, r in enumerate(rows)]
    if task == "hellaswag":  # label is a string "0".."3", "" on test
        return [_mc(_row_id(r, i, "ind"), language, r["ctx"], "", r["endings"], _int_label(r.get("label")))
                for i, r in enumerate(rows)]
    if task == "commonsenseqa":  # choices {label: [A..E], text: [...]}, answerKey "A".."E" ("" on test)
        out = []
        for i, r in enumerate(rows):
            keys = list(r["choices"]["label"])
            label = keys.index(r["answerKey"]) if r.get("answerKey") in keys else NO_LABEL
            out.append(_mc(_row_id(r, i, "id"), language, "", r["question"], r["choices"]["text"], label))
        return out
    raise ValueError(f"task={task!r} has no hub mapping; tasks on the hub: {', '.join(HUB)}")


def map_hub_rows(task: str, rows: list[dict], language: str):
    """Rows in the hub dataset's own schema -> a Dataset in the task family's schema."""
    get(task)
    return make_dataset(TASKS[task].family, _map_rows(task, list(rows), language))


# ---------------------------------------------------------------- loading

def hub_call(task: str, language: str, split: str) -> list[tuple[str, str | None, str, str]]:
    """The (repository, config, hub split, revision) `load_dataset` calls that make one
    task/language/split."""
    available = hub_available(task)
    if split not in available:
        raise ValueError(f"split={split!r} does not exist for task={task!r} on the hub; "
                         f"available splits: {', '.join(available)}")
    if language not in available[split]:
        raise ValueError(f"language={language!r} is not available for task={task!r} split={split!r} on the hub; "
                         f"available: {', '.join(available[split])}")
    source = HUB[task]
    return [(source.path, source.config(language), hub_split, source.revision) for hub_split in source.splits[split]]


def hub_parallel(task: str) -> bool:
    """Whether the hub rows of `task` with the same id are translations of each other."""
    source = HUB.get(task)
    if source is not None and source.parallel is not None:
        return source.parallel
    return get(task).parallel


def repository(path: str, revision: str = "main") -> str:
    """What `load_dataset` is given for the hub repository `path`: the id itself, or, when
    XFER_NB_HUB_MIRROR is set, the folder holding its copy (``<mirror>/<owner>/<name>``)."""
    value = os.environ.get(MIRROR_ENV, "").strip()
    if not value:
        return path
    local = Path(value).expanduser() / path
    if not local.is_dir():
        raise HubNotFound(
            f"{MIRROR_ENV}={value!r} has no copy of the hub dataset {path!r}: expected the folder {str(local)!r} "
            f"holding the repository's files at revision {revision!r} (e.g. `huggingface-cli download --repo-type "
            f"dataset {path} --revision {revision} --local-dir {local}`). Unset {MIRROR_ENV} to read the hub.")
    return str(local)


def _caused_by_network(err: BaseException) -> bool:
    names = {"LocalEntryNotFoundError", "OfflineModeIsEnabled", "ConnectError", "ConnectTimeout", "ProxyError",
             "ReadTimeout", "TimeoutException", "gaierror"}
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, (ConnectionError, TimeoutError)) or type(err).__name__ in names:
            return True
        err = err.__cause__ or err.__context__
    return False


def _explain(err: Exception, task: str, language: str, split: str, path: str, config: str | None,
             hub_split: str, revision: str) -> HubError | None:
    """The HubError that says what `err` (raised by load_dataset) means, or None when it is
    none of the known kinds (then the original error is raised unchanged)."""
    import datasets

    text = str(err)
    what = (f"cannot load task={task!r} language={language!r} split={split!r} from the hub dataset {path!r} "
            f"(config={config!r}, split={hub_split!r}, revision={revision!r})")
    cause = f"Cause: {type(err).__name__}: {text}"
    script = re.search(r"Dataset scripts are no longer supported, but found (\S+)", text)
    if script:
        return HubScriptDataset(
            f"{what}: the repository at this revision ships a loading script ({script.group(1)}), and datasets "
            f"{datasets.__version__} no longer runs dataset scripts. Point HUB[{task!r}] in xfer_nb/tasks/hub.py at a "
            f"parquet copy: revision={PARQUET_EXPORT!r} (the hub's own parquet conversion) or a maintained parquet "
            f"mirror of the same rows. {cause}")
    config_error = re.search(r"BuilderConfig '(.*)' not found\. Available: (\[.*\])", text, re.S)
    if config_error or text.startswith("Config name is missing"):
        available = config_error.group(2) if config_error else text.partition("configs:")[2].split("\n")[0].strip()
        return HubUnknownConfig(
            f"{what}: the dataset has no config {config!r}; its configs: {available}. Fix the config of "
            f"HUB[{task!r}] in xfer_nb/tasks/hub.py, or ask for a language the table lists "
            f"({', '.join(hub_available(task).get(split, []))}). {cause}")
    split_error = (re.search(r'Unknown split "(.*)"\. Should be one of (\[.*\])', text)
                   or re.search(r"Bad split: (.*)\. Available splits: (\[.*\])", text))
    if split_error:
        return HubUnknownSplit(
            f"{what}: config {config!r} has no split {hub_split!r}; its splits: {split_error.group(2)}. Fix the "
            f"split names of HUB[{task!r}] in xfer_nb/tasks/hub.py. {cause}")
    if _caused_by_network(err):
        why = ("HF_HUB_OFFLINE=1 is set, so the hub is unreachable from this process"
               if env_offline() else "the Hugging Face hub could not be reached")
        return HubUnreachable(
            f"{what}: {why}, and it is not in the local hub cache. Connect once to fill the cache, set {MIRROR_ENV} "
            f"to a folder with a copy of the repository, or use source='local' for the offline data. {cause}")
    if isinstance(err, datasets.exceptions.DatasetNotFoundError) or isinstance(err, FileNotFoundError):
        return HubNotFound(
            f"{what}: the repository or the revision {revision!r} does not exist, is gated, or holds no data "
            f"files. Check the repository id and revision of HUB[{task!r}] in xfer_nb/tasks/hub.py. {cause}")
    return None


def _commit(ds) -> str | None:
    """The 40-hex commit a hub load resolved to (it names the cache folder), if visible."""
    for entry in getattr(ds, "cache_files", None) or []:
        found = re.search(r"[\\/]([0-9a-f]{40})[\\/]", entry.get("filename", ""))
        if found:
            return found.group(1)
    return None


def drop_missing_labels(task: str, split: str, language: str, ds):
    """Drop rows whose label is -1 from a split the registry says is labelled (PAWS-X's
    card: some pairs carry -1), logging how many; -1 would otherwise reach the loss."""
    if "label" not in ds.column_names or not has_labels(task, split, "hub"):
        return ds
    labels = ds["label"]
    keep = [i for i, label in enumerate(labels) if label != NO_LABEL]
    dropped = len(labels) - len(keep)
    if dropped == 0:
        return ds
    if not keep:
        raise ValueError(f"task={task!r} language={language!r} split={split!r} (hub): every one of the {dropped} "
                         f"rows has label -1, i.e. no gold labels; mark the split unlabelled in the task registry")
    log.warning("task=%r language=%r split=%r (hub): dropped %d of %d rows whose label is -1 (no gold label)",
                task, language, split, dropped, len(labels))
    return ds.select(keep)


def load_hub(task: str, language: str, split: str):
    """Load one task/language/split from the hub (or the local hub cache, or the
    XFER_NB_HUB_MIRROR copy) in the family schema, rows with label -1 dropped."""
    import datasets

    rows: list[dict] = []
    for path, config, hub_split, revision in hub_call(task, language, split):
        try:
            ds = datasets.load_dataset(repository(path, revision), config, split=hub_split, revision=revision)
        except HubError:
            raise
        except Exception as err:  # noqa: BLE001 - re-raised as what it means, or unchanged
            explained = _explain(err, task, language, split, path, config, hub_split, revision)
            if explained is None:
                raise
            raise explained from err
        log.info("loaded %s config=%s split=%s revision=%s (commit %s): %d rows",
                 path, config, hub_split, revision, _commit(ds) or "unknown", len(ds))
        rows.extend(ds.to_list())
    return drop_missing_labels(task, split, language, map_hub_rows(task, rows, language))
