"""The Hugging Face hub source: which hub dataset, config and split hold each task, and
a pure mapping from each hub dataset's own columns to the task family's schema.

`HUB` is the documented table (`hub_available` reads languages and splits from it, so
nothing is fetched to list them). `load_hub` calls `datasets.load_dataset` and maps the
rows with `map_hub_rows`, which is pure and tested on rows built in each hub dataset's
own schema. Nothing here is exercised against the live hub in this repository's tests:
tests run with HF_HUB_OFFLINE=1, where `load_hub` raises `HubUnreachable`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from xfer_nb.tasks import NO_LABEL, TASKS, env_offline, get
from xfer_nb.tasks.schema import make_dataset


class HubUnreachable(FileNotFoundError):
    """The hub dataset is neither in the local cache nor reachable (e.g. HF_HUB_OFFLINE=1).

    A FileNotFoundError so callers (and `xfer-nb data`) treat it like missing local data."""


@dataclass(frozen=True)
class HubSource:
    """path: the hub dataset; config: its config name for a language (None: no config);
    splits: our split -> the hub split(s) concatenated into it; languages: per our split."""

    path: str
    config: Callable[[str], str | None]
    splits: dict[str, tuple[str, ...]]
    languages: dict[str, tuple[str, ...]]


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


HUB: dict[str, HubSource] = {
    "xnli": HubSource("facebook/xnli", lambda l: l, _TRAIN_DEV_TEST, _same(XNLI_LANGS, ("train", "dev", "test"))),
    "pawsx": HubSource("google-research-datasets/paws-x", lambda l: l, _TRAIN_DEV_TEST,
                       _same(PAWSX_LANGS, ("train", "dev", "test"))),
    "udpos": HubSource("google/xtreme", lambda l: f"udpos.{UDPOS_NAMES[l]}", _TRAIN_DEV_TEST, _udpos_languages()),
    "panx": HubSource("google/xtreme", lambda l: f"PAN-X.{l}", _TRAIN_DEV_TEST, _same(PANX_LANGS, ("train", "dev", "test"))),
    "xquad": HubSource("google/xtreme", lambda l: f"XQuAD.{l}", {"test": ("validation",)}, _same(XQUAD_LANGS, ("test",))),
    "mlqa": HubSource("google/xtreme", lambda l: f"MLQA.{l}.{l}", _DEV_TEST, _same(MLQA_LANGS, ("dev", "test"))),
    "tydiqa": HubSource("google/xtreme", lambda l: "tydiqa", _TRAIN_DEV,
                        _same(" ".join(sorted(TYDIQA_NAMES)), ("train", "dev"))),
    "tatoeba": HubSource("google/xtreme", lambda l: f"tatoeba.{TATOEBA_CODES[l]}", {"test": ("validation",)},
                         _same(" ".join(sorted(TATOEBA_CODES)), ("test",))),
    "bucc2018": HubSource("google/xtreme", lambda l: f"bucc18.{l}", _DEV_TEST, _same("de fr ru zh", ("dev", "test"))),
    "anli": HubSource("facebook/anli", lambda l: None,
                      {s: tuple(f"{s}_r{r}" for r in (1, 2, 3)) for s in ("train", "dev", "test")},
                      _same("en", ("train", "dev", "test"))),
    "americasnli": HubSource("nala-cub/americas_nli", lambda l: l, _DEV_TEST, _same(AMERICASNLI_LANGS, ("dev", "test"))),
    "siqa": HubSource("allenai/social_i_qa", lambda l: None, _TRAIN_DEV, _same("en", ("train", "dev"))),
    "cosmosqa": HubSource("allenai/cosmos_qa", lambda l: None, _TRAIN_DEV_TEST, _same("en", ("train", "dev", "test"))),
    "xcopa": HubSource("cambridgeltl/xcopa", lambda l: l, _DEV_TEST, _same(XCOPA_LANGS, ("dev", "test"))),
    "mnli": HubSource("nyu-mll/multi_nli", lambda l: None,
                      {"train": ("train",), "dev": ("validation_matched",), "dev_mismatched": ("validation_mismatched",)},
                      _same("en", ("train", "dev", "dev_mismatched"))),
    "qqp": HubSource("nyu-mll/glue", lambda l: "qqp", _TRAIN_DEV_TEST, _same("en", ("train", "dev", "test"))),
    "squad": HubSource("rajpurkar/squad", lambda l: None, _TRAIN_DEV, _same("en", ("train", "dev"))),
    "squad_v2": HubSource("rajpurkar/squad_v2", lambda l: None, _TRAIN_DEV, _same("en", ("train", "dev"))),
    "hellaswag": HubSource("Rowan/hellaswag", lambda l: None, _TRAIN_DEV_TEST, _same("en", ("train", "dev", "test"))),
    "commonsenseqa": HubSource("tau/commonsense_qa", lambda l: None, _TRAIN_DEV_TEST, _same("en", ("train", "dev", "test"))),
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

def hub_call(task: str, language: str, split: str) -> list[tuple[str, str | None, str]]:
    """The (path, config, hub split) load_dataset calls that make one task/language/split."""
    available = hub_available(task)
    if split not in available:
        raise ValueError(f"split={split!r} does not exist for task={task!r} on the hub; "
                         f"available splits: {', '.join(available)}")
    if language not in available[split]:
        raise ValueError(f"language={language!r} is not available for task={task!r} split={split!r} on the hub; "
                         f"available: {', '.join(available[split])}")
    source = HUB[task]
    return [(source.path, source.config(language), hub_split) for hub_split in source.splits[split]]


def load_hub(task: str, language: str, split: str):
    """Load one task/language/split from the hub (or the local hub cache) in the family schema."""
    import datasets

    rows: list[dict] = []
    for path, config, hub_split in hub_call(task, language, split):
        try:
            ds = datasets.load_dataset(path, config, split=hub_split)
        except Exception as err:  # the hub client raises several types for "not reachable / not cached"
            why = ("HF_HUB_OFFLINE=1 is set, so the hub is unreachable from this process"
                   if env_offline() else "the Hugging Face hub could not be reached or refused the request")
            raise HubUnreachable(
                f"cannot load task={task!r} language={language!r} split={split!r} from the hub "
                f"(load_dataset({path!r}, {config!r}, split={hub_split!r})): {why}, and it is not in the local "
                f"hub cache. Use source='local' for the offline data. Cause: {type(err).__name__}: {err}") from err
        rows.extend(ds.to_list())
    return map_hub_rows(task, rows, language)
