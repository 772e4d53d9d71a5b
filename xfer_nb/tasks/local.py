"""Readers for the local data folder (XTREME download layout plus `extra/<source>/`).

One reader per file format of ../shared/data/SOURCES.md. Each returns plain row dicts
in the task family's schema, labels already int indices into the task's label_names.
Files are found by pattern (`FILES`), so `available` reports what is really there.
Parsed files are cached per process: the whole inventory reads in a few seconds.

Text files are split on "\\n" only (never `str.splitlines`, which also breaks on
U+2028 and friends and would shift line-aligned files such as LASER Tatoeba).
"""
from __future__ import annotations

import csv
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from xfer_nb.tasks import NO_LABEL, TASKS

# LASER Tatoeba's ISO 639-3 codes -> ISO 639-1 where the language has one. Individual
# codes that are the standard variety of a macrolanguage take its 2-letter code
# (cmn->zh, swh->sw, pes->fa, zsm->ms, lvs->lv, as XTREME does for the first three);
# regional varieties (arz, arq, yue, wuu, gsw, ...) and languages without a 2-letter
# code keep their 3-letter code.
LASER_TO_ISO = {
    "amh": "am", "ara": "ar", "aze": "az", "bel": "be", "ben": "bn", "bos": "bs", "bre": "br",
    "bul": "bg", "cat": "ca", "ces": "cs", "cha": "ch", "cmn": "zh", "cor": "kw", "cym": "cy",
    "dan": "da", "deu": "de", "ell": "el", "epo": "eo", "est": "et", "fao": "fo", "fin": "fi",
    "fra": "fr", "fry": "fy", "gla": "gd", "gle": "ga", "glg": "gl", "heb": "he", "hin": "hi",
    "hrv": "hr", "hun": "hu", "hye": "hy", "ido": "io", "ile": "ie", "ina": "ia", "ind": "id",
    "isl": "is", "ita": "it", "jav": "jv", "jpn": "ja", "kat": "ka", "khm": "km", "kor": "ko",
    "kur": "ku", "lat": "la", "lit": "lt", "lvs": "lv", "mal": "ml", "mar": "mr", "mkd": "mk",
    "mon": "mn", "nld": "nl", "nno": "nn", "nob": "nb", "oci": "oc", "pes": "fa", "pol": "pl",
    "por": "pt", "ron": "ro", "rus": "ru", "slk": "sk", "slv": "sl", "spa": "es", "sqi": "sq",
    "srp": "sr", "swe": "sv", "swh": "sw", "tam": "ta", "tat": "tt", "tgl": "tl", "tha": "th",
    "tuk": "tk", "tur": "tr", "uig": "ug", "ukr": "uk", "urd": "ur", "uzb": "uz", "vie": "vi",
    "xho": "xh", "yid": "yi", "zsm": "ms",
    # the four held-out languages, absent from the curated folder but mapped for a full copy
    "afr": "af", "eus": "eu", "kaz": "kk", "tel": "te",
}
ISO_TO_LASER = {v: k for k, v in LASER_TO_ISO.items()}


def _lines(path: str) -> list[str]:
    """Lines of a UTF-8 text file, split on "\\n" only, "\\r" stripped, no trailing empty line."""
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


_BLANK_LINES = re.compile(r"\n(?:[ \t\r]*\n)+")  # one or more blank lines: a sentence break


def _label(names: tuple[str, ...], value: str, path: str) -> int:
    try:
        return names.index(value)
    except ValueError:
        raise ValueError(f"label {value!r} in {path} is not one of {', '.join(names)}") from None


# ---------------------------------------------------------------- pair classification

_NLI_SHORT = {"e": "entailment", "n": "neutral", "c": "contradiction"}
_PAWS = {"0": "not_paraphrase", "1": "paraphrase"}


def _pair(id_, lang, s1, s2, label):
    return {"id": id_, "language": lang, "sentence1": s1, "sentence2": s2, "label": label}


def read_xtreme_pair(task, paths, split, lang, labelled):
    """XNLI / PAWS-X in XTREME's layout: sentence1 TAB sentence2 TAB label, no header
    (XNLI labels are words, PAWS-X labels 0/1). Row i of every language is the same item."""
    names = TASKS[task].label_names
    rows = []
    for i, line in enumerate(_lines(paths[0])):
        parts = line.split("\t")
        if len(parts) < 2:
            raise ValueError(f"{paths[0]} line {i + 1}: expected sentence1<TAB>sentence2[<TAB>label], got {line[:80]!r}")
        raw = parts[2].strip() if len(parts) > 2 else ""
        label = _label(names, _PAWS.get(raw, raw), paths[0]) if labelled and raw else NO_LABEL
        rows.append(_pair(f"{split}-{i:05d}", lang, parts[0], parts[1], label))
    return rows


def _tsv_dicts(path: str) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def read_myxnli(task, paths, split, lang, labelled):
    """myXNLI: header `genre label sentence1_xx sentence2_xx`; the Burmese files also hold
    `sentence1_en sentence2_en`, read as language "en". Rows align across languages."""
    rows = []
    for i, r in enumerate(_tsv_dicts(paths[0])):
        label = _label(TASKS[task].label_names, r["label"], paths[0]) if labelled else NO_LABEL
        rows.append(_pair(f"{split}-{i:05d}", lang, r[f"sentence1_{lang}"], r[f"sentence2_{lang}"], label))
    return rows


def read_americasnli(task, paths, split, lang, labelled):
    """AmericasNLI: header `id language premise hypothesis label`; ids are shared by the
    translations of one XNLI item across languages."""
    names = TASKS[task].label_names
    return [_pair(r["id"], lang, r["premise"], r["hypothesis"],
                  _label(names, r["label"], paths[0]) if labelled else NO_LABEL)
            for r in _tsv_dicts(paths[0])]


def read_anli(task, paths, split, lang, labelled):
    """ANLIzing-ANLI CSVs (one per round; quoted fields span lines, so the csv module):
    context -> sentence1, statement -> sentence2, gold_label e/n/c."""
    names = TASKS[task].label_names
    rows = []
    for path in paths:
        with open(path, encoding="utf-8", newline="") as f:
            for r in csv.DictReader(f):
                label = _label(names, _NLI_SHORT.get(r["gold_label"], r["gold_label"]), path) if labelled else NO_LABEL
                rows.append(_pair(r["uid"], lang, r["context"], r["statement"], label))
    return rows


# ---------------------------------------------------------------- tagging

def read_conll(task, paths, split, lang, labelled):
    """UD-POS / PAN-X in XTREME's layout: token TAB tag per line, a blank line between
    sentences, no tag column in unlabelled files. A "xx:" language prefix on tokens (as
    in XTREME's raw PAN-X files) is stripped when the file's first token carries it."""
    names = TASKS[task].label_names
    index = {n: i for i, n in enumerate(names)}
    prefix = f"{lang}:"
    lines = _lines(paths[0])
    strip = bool(lines) and lines[0].startswith(prefix)
    # Sentences are the runs of non-blank lines; splitting the joined text on blank lines
    # is several times faster than a per-line state machine on 1.7 M UD tokens.
    blocks = _BLANK_LINES.split("\n".join(lines))
    rows = []
    for block in blocks:
        if not block.strip():
            continue
        cells = [line.split("\t") for line in block.split("\n")]
        tokens = [c[0][len(prefix):] if strip and c[0].startswith(prefix) else c[0] for c in cells]
        if labelled:
            try:
                tags = [index[c[-1].strip()] if len(c) > 1 else index[""] for c in cells]
            except KeyError as err:
                raise ValueError(f"{paths[0]} sentence {len(rows) + 1}: tag {err.args[0]!r} is not one of "
                                 f"{', '.join(names)}") from None
        else:
            tags = [NO_LABEL] * len(tokens)
        rows.append({"id": f"{split}-{len(rows):05d}", "language": lang, "tokens": tokens, "tags": tags})
    return rows


# ---------------------------------------------------------------- QA

def read_squad(task, paths, split, lang, labelled):
    """SQuAD-format JSON (XQuAD, MLQA, TyDiQA-GoldP). XQuAD and MLQA ids are shared by
    translations; TyDiQA's local ids repeat within a file, so they get the row index."""
    with open(paths[0], encoding="utf-8") as f:
        data = json.load(f)["data"]
    rows = []
    for article in data:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers = qa.get("answers", []) if labelled else []
                qid = f"{split}-{len(rows):05d}" if task == "tydiqa" else str(qa["id"])
                rows.append({"id": qid, "language": lang, "context": paragraph["context"],
                             "question": qa["question"],
                             "answers": {"text": [a["text"] for a in answers],
                                         "answer_start": [int(a["answer_start"]) for a in answers]}})
    return rows


# ---------------------------------------------------------------- multiple choice

def _mc(id_, lang, context, question, choices, label):
    return {"id": id_, "language": lang, "context": context, "question": question,
            "choices": list(choices), "label": label}


def _jsonl(path: str) -> list[dict]:
    return [json.loads(line) for line in _lines(path) if line.strip()]


def read_xcopa(task, paths, split, lang, labelled):
    """XCOPA / COPA jsonl: context = premise, question = "cause" or "effect" as in the
    file, choices = [choice1, choice2]; ids are the shared `idx`."""
    return [_mc(str(r["idx"]), lang, r["premise"], r["question"], [r["choice1"], r["choice2"]],
                int(r["label"]) if labelled else NO_LABEL)
            for r in _jsonl(paths[0])]


def read_siqa(task, paths, split, lang, labelled):
    """Social IQa jsonl: answerA/B/C, `correct` A/B/C."""
    names = TASKS[task].label_names
    return [_mc(f"{split}-{i:05d}", lang, r["context"], r["question"],
                [r["answerA"], r["answerB"], r["answerC"]],
                _label(names, r["correct"], paths[0]) if labelled else NO_LABEL)
            for i, r in enumerate(_jsonl(paths[0]))]


def read_cosmosqa(task, paths, split, lang, labelled):
    """Cosmos QA csv: id, context, question, answer0..3, label 0-3."""
    with open(paths[0], encoding="utf-8", newline="") as f:
        return [_mc(r["id"], lang, r["context"], r["question"], [r[f"answer{k}"] for k in range(4)],
                    int(r["label"]) if labelled else NO_LABEL)
                for r in csv.DictReader(f)]


# ---------------------------------------------------------------- retrieval

def _retrieval(id_, lang, side, sentence, gold=""):
    return {"id": id_, "language": lang, "side": side, "sentence": sentence, "gold": gold}


def read_tatoeba(task, paths, split, lang, labelled):
    """LASER Tatoeba: tatoeba.xxx-eng.xxx and .eng, line i translating line i."""
    source, target = _lines(paths[0]), _lines(paths[1])
    if len(source) != len(target):
        raise ValueError(f"{paths[0]} has {len(source)} lines but {paths[1]} has {len(target)}; "
                         "LASER Tatoeba files must be line-aligned")
    rows = [_retrieval(f"{lang}-{i:05d}", lang, "source", s, f"en-{i:05d}") for i, s in enumerate(source)]
    rows += [_retrieval(f"en-{i:05d}", "en", "target", t) for i, t in enumerate(target)]
    return rows


def read_bucc(task, paths, split, lang, labelled):
    """BUCC 2018: `{xx}-en.{split}.{xx}` and `.en` are `id TAB sentence`; `.gold` pairs ids."""
    source_path, target_path, gold_path = paths

    def id_sentences(path):
        out = []
        for n, line in enumerate(_lines(path)):
            sid, sep, sentence = line.partition("\t")
            if not sep:
                raise ValueError(f"{path} line {n + 1}: expected id<TAB>sentence, got {line[:80]!r}")
            out.append((sid, sentence))
        return out

    gold = dict(line.split("\t")[:2] for line in _lines(gold_path)) if labelled else {}
    rows = [_retrieval(sid, lang, "source", s, gold.get(sid, "")) for sid, s in id_sentences(source_path)]
    rows += [_retrieval(tid, "en", "target", t) for tid, t in id_sentences(target_path)]
    return rows


# ---------------------------------------------------------------- file discovery

@dataclass(frozen=True)
class Files:
    """Where a task's files are: a glob (relative to the data folder), a regex with
    named groups `split` and/or `lang` over the relative path, fixed split/lang where the
    file name has none, split renames ("val" -> "dev"), and the reader."""

    glob: str
    regex: str
    reader: Callable
    split: str | None = None
    lang: str | None = None
    split_names: tuple[tuple[str, str], ...] = ()
    lang_map: tuple[tuple[str, str], ...] = ()


_X, _E = "xtreme", "extra"
FILES: dict[str, Files] = {
    "xnli": Files(f"{_X}/xnli/*.tsv", rf"{_X}/xnli/(?P<split>train|dev|test)-(?P<lang>[a-z]+)\.tsv", read_xtreme_pair),
    "pawsx": Files(f"{_X}/pawsx/*.tsv", rf"{_X}/pawsx/(?P<split>train|dev|test)-(?P<lang>[a-z]+)\.tsv", read_xtreme_pair),
    "udpos": Files(f"{_X}/udpos/*.tsv", rf"{_X}/udpos/(?P<split>train|dev|test)-(?P<lang>[a-z]+)\.tsv", read_conll),
    "panx": Files(f"{_X}/panx/*.tsv", rf"{_X}/panx/(?P<split>train|dev|test)-(?P<lang>[a-z]+)\.tsv", read_conll),
    "xquad": Files(f"{_X}/xquad/xquad.*.json", rf"{_X}/xquad/xquad\.(?P<lang>[a-z]+)\.json", read_squad, split="test"),
    "mlqa": Files(f"{_X}/mlqa/MLQA_V1/*/*.json",
                  rf"{_X}/mlqa/MLQA_V1/(?P<split>dev|test)/(?P=split)-context-(?P<lang>[a-z]+)-question-(?P=lang)\.json",
                  read_squad),
    "tydiqa": Files(f"{_X}/tydiqa/*/*.json",
                    rf"{_X}/tydiqa/tydiqa-goldp-v1\.1-(?P<split>train|dev)/tydiqa\.goldp\.(?P<lang>[a-z]+)\.(?P=split)\.json",
                    read_squad),
    "tatoeba": Files(f"{_E}/laser-tatoeba/data/tatoeba/v1/tatoeba.*-eng.*",
                     rf"{_E}/laser-tatoeba/data/tatoeba/v1/tatoeba\.(?P<lang>[a-z]+)-eng\.(?P=lang)",
                     read_tatoeba, split="test", lang_map=tuple(LASER_TO_ISO.items())),
    "bucc2018": Files(f"{_X}/bucc2018/*", rf"{_X}/bucc2018/(?P<lang>[a-z]+)-en\.(?P<split>dev|test)\.(?P=lang)", read_bucc),
    "anli": Files(f"{_E}/anli/anlizinganli/anli_annot_v0.2/*.csv",
                  rf"{_E}/anli/anlizinganli/anli_annot_v0\.2/ANLI_analysis_r[1-3]_(?P<split>dev|test|train)\.csv",
                  read_anli, lang="en"),
    "americasnli": Files(f"{_E}/americasnli/data/anli_final/*/*.tsv",
                         rf"{_E}/americasnli/data/anli_final/(?P<split>dev|test)/(?P<lang>[a-z]+)\.tsv", read_americasnli),
    "myxnli": Files(f"{_E}/myxnli/output/*/*.tsv",
                    rf"{_E}/myxnli/output/(?P<lang>[a-z]+)/(?P=lang)\.genre\.(?P<split>dev|test)\.tsv", read_myxnli),
    "siqa": Files(f"{_E}/siqa/*.jsonl", rf"{_E}/siqa/socialIQa_v1\.4_(?P<split>trn|dev|tst)\.jsonl", read_siqa,
                  lang="en", split_names=(("trn", "train"), ("tst", "test"))),
    "cosmosqa": Files(f"{_E}/cosmosqa/data/*.csv", rf"{_E}/cosmosqa/data/(?P<split>train|valid|test)\.csv",
                      read_cosmosqa, lang="en", split_names=(("valid", "dev"),)),
    "xcopa": Files(f"{_E}/xcopa/*.jsonl", rf"{_E}/xcopa/(?P<split>train|val|test)-(?P<lang>[a-z]+)\.jsonl",
                   read_xcopa, split_names=(("val", "dev"),)),
}


def _myxnli_languages(path: Path, lang: str) -> list[str]:
    """myXNLI files name their languages in the header (sentence1_xx columns)."""
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\r\n").split("\t")
    langs = [c[len("sentence1_"):] for c in header if c.startswith("sentence1_")]
    return langs or [lang]


@functools.lru_cache(maxsize=None)
def files(task: str, root: str) -> dict[tuple[str, str], tuple[str, ...]]:
    """{(split, language): paths} of the task's files under `root` (several paths when
    a reader combines files: ANLI rounds, Tatoeba's two sides, BUCC's three files)."""
    spec = FILES[task]
    base = Path(root)
    pattern = re.compile(spec.regex)
    split_names, lang_map = dict(spec.split_names), dict(spec.lang_map)
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(base.glob(spec.glob)):
        m = pattern.fullmatch(path.relative_to(base).as_posix())
        if not m:
            continue
        groups = m.groupdict()
        split = split_names.get(groups.get("split"), groups.get("split")) or spec.split
        raw_lang = groups.get("lang") or spec.lang
        if task == "tatoeba":
            other = path.with_name(f"tatoeba.{raw_lang}-eng.eng")
            if not other.is_file():
                continue
            found[(split, lang_map.get(raw_lang, raw_lang))] = [str(path), str(other)]
        elif task == "bucc2018":
            stem = path.with_name(f"{raw_lang}-en.{groups['split']}")
            en, gold = Path(f"{stem}.en"), Path(f"{stem}.gold")
            if en.is_file() and gold.is_file():
                found[(split, raw_lang)] = [str(path), str(en), str(gold)]
        elif task == "myxnli":
            for lang in _myxnli_languages(path, raw_lang):
                found[(split, lang)] = [str(path)]
        else:
            found.setdefault((split, lang_map.get(raw_lang, raw_lang)), []).append(str(path))
    return {key: tuple(paths) for key, paths in sorted(found.items())}


def available(task: str, root: str) -> dict[str, list[str]]:
    """{split: sorted languages} present under `root`; splits in train/dev/test order."""
    out: dict[str, list[str]] = {}
    for split, lang in files(task, root):
        out.setdefault(split, []).append(lang)
    order = {"train": 0, "dev": 1, "test": 2}
    return {s: sorted(out[s]) for s in sorted(out, key=lambda s: (order.get(s, 9), s))}


@functools.lru_cache(maxsize=None)
def _read(task: str, root: str, split: str, lang: str) -> tuple[dict, ...]:
    from xfer_nb.tasks import has_labels
    paths = files(task, root)[(split, lang)]
    return tuple(FILES[task].reader(task, paths, split, lang, has_labels(task, split, "local")))


def read(task: str, root: str, split: str, lang: str) -> list[dict]:
    """Rows of one task/split/language (cached per process; the caller gets a new list)."""
    return list(_read(task, root, split, lang))


def _nonblank_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f.read().split(b"\n") if line.strip())


def _conll_sentences(path: str) -> int:
    with open(path, encoding="utf-8", newline="") as f:
        return sum(1 for block in _BLANK_LINES.split(f.read()) if block.strip())


def _squad_questions(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(len(p["qas"]) for a in json.load(f)["data"] for p in a["paragraphs"])


# Counting without building rows, for the inventory. Each counter gives the number of
# rows its reader returns (for retrieval: source sentences); tests check they agree.
_COUNTERS = {
    read_xtreme_pair: _nonblank_lines,
    read_conll: _conll_sentences,
    read_squad: _squad_questions,
    read_tatoeba: lambda path: len(_lines(path)),
    read_bucc: _nonblank_lines,
    read_myxnli: lambda path: _nonblank_lines(path) - 1,        # minus the header
    read_americasnli: lambda path: _nonblank_lines(path) - 1,
    read_xcopa: _nonblank_lines,
    read_siqa: _nonblank_lines,
}


def count(task: str, root: str, split: str, lang: str) -> int:
    """Examples in one file set (rows; for retrieval the source-side sentences), counted
    without parsing where the format allows, so the inventory stays fast."""
    paths = files(task, root)[(split, lang)]
    counter = _COUNTERS.get(FILES[task].reader)
    if counter is not None:
        return counter(paths[0])
    rows = _read(task, root, split, lang)
    if TASKS[task].family == "retrieval":
        return sum(r["side"] == "source" for r in rows)
    return len(rows)
