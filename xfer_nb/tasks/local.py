"""Readers for the local data folder (XTREME download layout plus `extra/<source>/`).

One reader per file format of ../shared/data/SOURCES.md. Each returns plain row dicts
in the task family's schema, labels already int indices into the task's label_names.
Files are found by pattern (`FILES`), so `available` reports what is really there.
Parsed files are cached per process: the whole inventory reads in a few seconds.

Text files are split on "\\n" only (never `str.splitlines`, which also breaks on
U+2028 and friends and would shift line-aligned files such as LASER Tatoeba).

Data are checked as they load, so a damaged copy fails instead of scoring: every row
has every field of its format, every label is in the task's label set, every QA answer
sits at its offset in its context, and a file whose rows align by line with the other
languages' has their row count (`ALIGNED_ROWS`). Each problem raises `DataError`, whose
message starts with the file (relative to the data folder) and the line, e.g.
"xtreme/xnli/dev-de.tsv line 2491: 2 fields, expected 3 (sentence1, sentence2, label)".
"""
from __future__ import annotations

import contextlib
import csv
import functools
import gc
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from xfer_nb.tasks.registry import NO_LABEL, TASKS

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


# ---------------------------------------------------------------- checked reading

class DataError(ValueError):
    """A data file that does not hold what its format promises: cut inside a record,
    a missing field or label, truncated JSON, bytes that are not UTF-8, an empty file,
    or fewer rows than its parallel files. The message starts with the file and where in
    it (a line, or a JSON location), then says what is wrong and what was expected."""

    def __init__(self, path, where: str, problem: str):
        self.path, self.where, self.problem = str(path), where, problem
        super().__init__(f"{self.path} {where}: {problem}")

    def under(self, root: str) -> "DataError":
        """The same error with the path relative to the data folder `root`, which the
        message then names once at its end."""
        try:
            relative = Path(self.path).relative_to(root).as_posix()
        except ValueError:
            return self
        return DataError(relative, self.where, f"{self.problem} [data folder: {root}]")


def _text(path: str) -> str:
    """The whole file as text; an empty file, or one that is not UTF-8, is a DataError
    naming the line of the first bad byte."""
    with open(path, "rb") as f:
        raw = f.read()
    if not raw or raw.isspace():
        raise DataError(path, "line 1", "the file is empty" if not raw else "the file holds only blank space")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        if err.end == len(raw) and err.reason == "unexpected end of data":
            raise DataError(path, f"line {line}", "the file ends inside a character (a cut multi-byte UTF-8 "
                                                  "sequence): it is truncated") from None
        raise DataError(path, f"line {line}", f"byte {raw[err.start:err.start + 1]!r} at column {column} is not "
                                              "UTF-8; the data files must be UTF-8 text") from None


def _lines(path: str) -> list[str]:
    """Lines of a UTF-8 text file, split on "\\n" only, "\\r" stripped, no trailing empty line."""
    lines = [line[:-1] if line.endswith("\r") else line for line in _text(path).split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


_BLANK_LINES = re.compile(r"\n(?:[ \t\r]*\n)+")  # one or more blank lines: a sentence break


def _label(names: tuple[str, ...], value, path: str, where: str) -> int:
    value = "" if value is None else str(value).strip()
    if not value:
        raise DataError(path, where, f"empty label; expected one of {', '.join(names)}")
    try:
        return names.index(value)
    except ValueError:
        raise DataError(path, where, f"label {value!r} is not one of {', '.join(names)}") from None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# ---------------------------------------------------------------- pair classification

_NLI_SHORT = {"e": "entailment", "n": "neutral", "c": "contradiction"}
_PAWS = {"0": "not_paraphrase", "1": "paraphrase"}
_XNLI_EXTENSION = {"contradictory": "contradiction"}   # xnli-extension's spelling


def _pair(id_, lang, s1, s2, label):
    return {"id": id_, "language": lang, "sentence1": s1, "sentence2": s2, "label": label}


def _tsv_pairs(task, path, lines, first, split, lang, labelled, aliases):
    """Pair rows from `sentence1 TAB sentence2 TAB label` lines; `first` is the 1-based
    line number of lines[0]; row i gets id `{split}-{i:05d}` (line-aligned files)."""
    names = TASKS[task].label_names
    columns = "sentence1, sentence2, label" if labelled else "sentence1, sentence2[, label]"
    rows = []
    for i, line in enumerate(lines):
        parts = line.split("\t")
        if len(parts) != 3 and (labelled or len(parts) != 2):
            where = f"line {first + i}"
            raise DataError(path, where, f"{_plural(len(parts), 'field')}, expected {3 if labelled else '2 or 3'} "
                                         f"({columns}){'; the file may be cut inside a record' if len(parts) < 3 else ''}")
        if not parts[0].strip() or not parts[1].strip():
            raise DataError(path, f"line {first + i}", f"empty {'sentence1' if not parts[0].strip() else 'sentence2'}")
        raw = parts[2].strip() if len(parts) > 2 else ""
        label = _label(names, aliases.get(raw, raw), path, f"line {first + i}") if labelled else NO_LABEL
        rows.append(_pair(f"{split}-{i:05d}", lang, parts[0], parts[1], label))
    return rows


def read_xtreme_pair(task, paths, split, lang, labelled):
    """XNLI / PAWS-X in XTREME's layout: sentence1 TAB sentence2 TAB label, no header
    (XNLI labels are words, PAWS-X labels 0/1). Row i of every language is the same item."""
    return _tsv_pairs(task, paths[0], _lines(paths[0]), 1, split, lang, labelled, _PAWS)


_XNLI_EXTENSION_HEADER = ["premise", "hypo", "label"]


def read_xnli_extension(task, paths, split, lang, labelled):
    """salesforce/xnli_extension: header `premise hypo label`, then MultiNLI's first
    15,001 training pairs (tokenised text; `contradictory` for contradiction), line i
    the same pair in every language."""
    lines = _lines(paths[0])
    header = lines[0].split("\t")
    if header != _XNLI_EXTENSION_HEADER:
        raise DataError(paths[0], "line 1", f"header {header}, expected {_XNLI_EXTENSION_HEADER}")
    if len(lines) == 1:
        raise DataError(paths[0], "line 2", "no rows after the header")
    return _tsv_pairs(task, paths[0], lines[1:], 2, split, lang, labelled, _XNLI_EXTENSION)


def _dict_rows(path: str, required: list[str], tsv: bool = False) -> list[tuple[str, dict]]:
    """(where, row) of a CSV (or TSV, unquoted) file with a header: every row has every
    header field, and the header holds `required`. Quoted CSV fields may span lines."""
    kw = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if tsv else {}
    reader = csv.DictReader(io.StringIO(_text(path), newline=""), **kw)
    try:
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(path, "line 1", f"the header lacks {', '.join(missing)} (header: {', '.join(header)})")
        out = []
        for row in reader:
            where = f"line {reader.line_num}"
            if None in row or any(row[c] is None for c in header):
                n = sum(v is not None for k, v in row.items() if k is not None) + len(row.get(None) or [])
                raise DataError(path, where, f"{_plural(n, 'field')}, expected {len(header)} ({', '.join(header)})"
                                             f"{'; the file may be cut inside a record' if n < len(header) else ''}")
            out.append((where, row))
    except csv.Error as err:
        raise DataError(path, f"line {reader.line_num}", f"not valid {'TSV' if tsv else 'CSV'}: {err}") from None
    if not out:
        raise DataError(path, "line 2", "no rows after the header")
    return out


def read_myxnli(task, paths, split, lang, labelled):
    """myXNLI: header `genre label sentence1_xx sentence2_xx`; the Burmese files also hold
    `sentence1_en sentence2_en`, read as language "en". Rows align across languages."""
    names, first, second = TASKS[task].label_names, f"sentence1_{lang}", f"sentence2_{lang}"
    return [_pair(f"{split}-{i:05d}", lang, r[first], r[second],
                  _label(names, r["label"], paths[0], where) if labelled else NO_LABEL)
            for i, (where, r) in enumerate(_dict_rows(paths[0], ["label", first, second], tsv=True))]


def read_americasnli(task, paths, split, lang, labelled):
    """AmericasNLI: header `id language premise hypothesis label`; ids are shared by the
    translations of one XNLI item across languages."""
    names = TASKS[task].label_names
    return [_pair(r["id"], lang, r["premise"], r["hypothesis"],
                  _label(names, r["label"], paths[0], where) if labelled else NO_LABEL)
            for where, r in _dict_rows(paths[0], ["id", "premise", "hypothesis", "label"], tsv=True)]


def read_anli(task, paths, split, lang, labelled):
    """ANLIzing-ANLI CSVs (one per round; quoted fields span lines, so the csv module):
    context -> sentence1, statement -> sentence2, gold_label e/n/c."""
    names = TASKS[task].label_names
    rows = []
    for path in paths:
        for where, r in _dict_rows(path, ["uid", "context", "statement", "gold_label"]):
            raw = r["gold_label"].strip()
            label = _label(names, _NLI_SHORT.get(raw, raw), path, where) if labelled else NO_LABEL
            rows.append(_pair(r["uid"], lang, r["context"], r["statement"], label))
    return rows


# ---------------------------------------------------------------- tagging

def _conll_line(lines: list[str], sentence: int, offset: int) -> int:
    """1-based line number of line `offset` of the `sentence`-th (0-based) sentence."""
    k, previous_blank = -1, True
    for n, line in enumerate(lines):
        blank = not line.strip(" \t\r")
        if not blank and previous_blank:
            k += 1
        if not blank and k == sentence:
            return n + 1 + offset
        previous_blank = blank
    return len(lines)


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
                tags = [index[c[1].strip()] for c in cells if len(c) == 2]
            except KeyError:
                tags = []
            if len(tags) != len(cells):   # the slow path only finds the first bad line
                j, c = next((j, c) for j, c in enumerate(cells) if len(c) != 2 or c[1].strip() not in index)
                where = f"line {_conll_line(lines, len(rows), j)}"
                if len(c) != 2:
                    raise DataError(paths[0], where, f"{_plural(len(c), 'field')}, expected 2 (token, tag)"
                                                     f"{'; the file may be cut inside a record' if len(c) < 2 else ''}")
                raise DataError(paths[0], where, f"{'empty tag' if not c[1].strip() else f'tag {c[1].strip()!r}'}; "
                                                 f"expected one of {', '.join(names)}")
        else:
            tags = [NO_LABEL] * len(tokens)
        rows.append({"id": f"{split}-{len(rows):05d}", "language": lang, "tokens": tokens, "tags": tags})
    return rows


# ---------------------------------------------------------------- QA

def _json(path: str):
    try:
        return json.loads(_text(path))
    except json.JSONDecodeError as err:
        raise DataError(path, f"line {err.lineno}", f"not valid JSON: {err.msg} at column {err.colno}"
                                                    "; the file may be truncated") from None


def _get(obj, key: str, kind: type, path: str, where: str):
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        problem = f"no {key!r} field" if value is None else f"{key!r} is a {type(value).__name__}, expected {expected}"
        raise DataError(path, where, problem)
    return value


class _NotSquad(Exception):
    """Raised inside the fast SQuAD loop; `_squad_problem` then finds and names the spot."""


def read_squad(task, paths, split, lang, labelled):
    """SQuAD-format JSON (SQuAD, XQuAD, MLQA, TyDiQA-GoldP). XQuAD and MLQA ids are shared
    by translations; TyDiQA's local ids repeat within a file, so they get the row index.
    Every answer must sit at its `answer_start` in its context (JSON locations name errors)."""
    path = paths[0]
    data = _json(path)
    rows = []
    try:   # the fast path checks everything but builds no error locations (SQuAD: 87,599 questions)
        for article in data["data"]:
            for paragraph in article["paragraphs"]:
                context = paragraph["context"]
                if type(context) is not str:
                    raise _NotSquad
                for qa in paragraph["qas"]:
                    question = qa["question"]
                    qid = f"{split}-{len(rows):05d}" if task == "tydiqa" else qa["id"]
                    if type(question) is not str or type(qid) not in (str, int):
                        raise _NotSquad
                    texts, starts = [], []
                    if labelled:
                        answers = qa["answers"]
                        if not answers:
                            raise _NotSquad
                        texts = [answer["text"] for answer in answers]
                        starts = [answer["answer_start"] for answer in answers]
                        for text, start in zip(texts, starts):
                            if type(start) is not int or type(text) is not str or context[start:start + len(text)] != text:
                                raise _NotSquad
                    rows.append({"id": str(qid), "language": lang, "context": context, "question": question,
                                 "answers": {"text": texts, "answer_start": starts}})
    except (_NotSquad, KeyError, TypeError, AttributeError):
        _squad_problem(task, data, path, split, labelled)
        raise DataError(path, "top level", "not in SQuAD format ({'data': [{'paragraphs': [{'context', 'qas'}]}]})")
    if not rows:
        raise DataError(path, "top level", "no questions in the file")
    return rows


def _squad_problem(task, data, path, split, labelled) -> None:
    """Walk a SQuAD-format object checking every field; raise a DataError at the first
    problem, named by its JSON location."""
    n = 0
    for a, article in enumerate(_get(data, "data", list, path, "top level")):
        for p, paragraph in enumerate(_get(article, "paragraphs", list, path, f"data[{a}]")):
            where = f"data[{a}].paragraphs[{p}]"
            context = _get(paragraph, "context", str, path, where)
            for q, qa in enumerate(_get(paragraph, "qas", list, path, where)):
                where = f"data[{a}].paragraphs[{p}].qas[{q}]"
                _get(qa, "question", str, path, where)
                qid = f"{split}-{n:05d}" if task == "tydiqa" else _get(qa, "id", (str, int), path, where)
                n += 1
                if not labelled:
                    continue
                answers = _get(qa, "answers", list, path, where)
                if not answers:
                    raise DataError(path, where, f"question {qid!r} has no answers")
                for k, answer in enumerate(answers):
                    text = _get(answer, "text", str, path, f"{where}.answers[{k}]")
                    start = _get(answer, "answer_start", int, path, f"{where}.answers[{k}]")
                    if context[start:start + len(text)] != text:
                        raise DataError(path, f"{where}.answers[{k}]",
                                        f"answer {text[:60]!r} is not at answer_start={start} of its context")


# ---------------------------------------------------------------- multiple choice

def _mc(id_, lang, context, question, choices, label):
    return {"id": id_, "language": lang, "context": context, "question": question,
            "choices": list(choices), "label": label}


def _jsonl(path: str, required: list[str]) -> list[tuple[str, dict]]:
    """(where, object) per line of a JSON-lines file; every line is one object with the
    `required` keys (no blank lines inside: other files may align with its lines)."""
    out = []
    for n, line in enumerate(_lines(path), 1):
        where = f"line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            problem = "blank line" if not line.strip() else f"not valid JSON: {err.msg} at column {err.colno}"
            raise DataError(path, where, f"{problem}; each line must be one JSON object") from None
        if not isinstance(obj, dict):
            raise DataError(path, where, f"a JSON {type(obj).__name__}, expected an object")
        missing = [k for k in required if obj.get(k) is None]
        if missing:
            raise DataError(path, where, f"no {', '.join(map(repr, missing))} field (a row needs {', '.join(required)})")
        out.append((where, obj))
    return out


def _choice_label(value, n: int, path: str, where: str) -> int:
    if isinstance(value, bool) or str(value).strip() not in {str(k) for k in range(n)}:
        raise DataError(path, where, f"label {value!r} is not one of {', '.join(map(str, range(n)))}")
    return int(str(value).strip())


def read_xcopa(task, paths, split, lang, labelled):
    """XCOPA / COPA jsonl: context = premise, question = "cause" or "effect" as in the
    file, choices = [choice1, choice2]; ids are the shared `idx`."""
    required = ["idx", "premise", "question", "choice1", "choice2"] + (["label"] if labelled else [])
    return [_mc(str(r["idx"]), lang, r["premise"], r["question"], [r["choice1"], r["choice2"]],
                _choice_label(r["label"], 2, paths[0], where) if labelled else NO_LABEL)
            for where, r in _jsonl(paths[0], required)]


_SIQA_FIELDS = ["context", "question", "answerA", "answerB", "answerC"]


def read_siqa(task, paths, split, lang, labelled):
    """Social IQa v1.4 jsonl: answerA/B/C, `correct` A/B/C."""
    names = TASKS[task].label_names
    return [_mc(f"{split}-{i:05d}", lang, r["context"], r["question"],
                [r["answerA"], r["answerB"], r["answerC"]],
                _label(names, r["correct"], paths[0], where) if labelled else NO_LABEL)
            for i, (where, r) in enumerate(_jsonl(paths[0], _SIQA_FIELDS + (["correct"] if labelled else [])))]


def read_siqa_with_labels(task, paths, split, lang, labelled):
    """AI2's SocialIQA release: `{split}.jsonl` (context, question, answerA-C) and
    `{split}-labels.lst`, the 1-based gold answer of line i on line i."""
    data_path, labels_path = paths
    rows = _jsonl(data_path, _SIQA_FIELDS)
    labels = [NO_LABEL] * len(rows)
    if labelled:
        lines = _lines(labels_path)
        if len(lines) != len(rows):
            shorter = labels_path if len(lines) < len(rows) else data_path
            raise DataError(shorter, f"line {min(len(lines), len(rows)) + 1}",
                            f"{Path(labels_path).name} has {len(lines):,} labels but {Path(data_path).name} has "
                            f"{len(rows):,} rows; the two files must be line-aligned")
        labels = [_label(("1", "2", "3"), v, labels_path, f"line {n}") for n, v in enumerate(lines, 1)]
    return [_mc(f"{split}-{i:05d}", lang, r["context"], r["question"], [r["answerA"], r["answerB"], r["answerC"]],
                label) for i, ((_, r), label) in enumerate(zip(rows, labels))]


def read_cosmosqa(task, paths, split, lang, labelled):
    """Cosmos QA csv: id, context, question, answer0..3, label 0-3."""
    required = ["id", "context", "question"] + [f"answer{k}" for k in range(4)] + (["label"] if labelled else [])
    return [_mc(r["id"], lang, r["context"], r["question"], [r[f"answer{k}"] for k in range(4)],
                _choice_label(r["label"], 4, paths[0], where) if labelled else NO_LABEL)
            for where, r in _dict_rows(paths[0], required)]


# ---------------------------------------------------------------- retrieval

def _retrieval(id_, lang, side, sentence, gold=""):
    return {"id": id_, "language": lang, "side": side, "sentence": sentence, "gold": gold}


def read_tatoeba(task, paths, split, lang, labelled):
    """LASER Tatoeba: tatoeba.xxx-eng.xxx and .eng, line i translating line i."""
    source, target = _lines(paths[0]), _lines(paths[1])
    if len(source) != len(target):
        shorter = paths[0] if len(source) < len(target) else paths[1]
        raise DataError(shorter, f"line {min(len(source), len(target)) + 1}",
                        f"{Path(paths[0]).name} has {len(source):,} lines but {Path(paths[1]).name} has "
                        f"{len(target):,}; LASER Tatoeba files must be line-aligned")
    rows = [_retrieval(f"{lang}-{i:05d}", lang, "source", s, f"en-{i:05d}") for i, s in enumerate(source)]
    rows += [_retrieval(f"en-{i:05d}", "en", "target", t) for i, t in enumerate(target)]
    return rows


def read_bucc(task, paths, split, lang, labelled):
    """BUCC 2018: `{xx}-en.{split}.{xx}` and `.en` are `id TAB sentence`; `.gold` pairs ids."""
    source_path, target_path, gold_path = paths

    def id_pairs(path, what):
        out = []
        for n, line in enumerate(_lines(path)):
            first, sep, second = line.partition("\t")
            if not sep or not first.strip():
                raise DataError(path, f"line {n + 1}", f"expected {what}, got {line[:80]!r}")
            out.append((first, second))
        return out

    gold = dict(id_pairs(gold_path, "source_id<TAB>target_id")) if labelled else {}
    rows = [_retrieval(sid, lang, "source", s, gold.get(sid, ""))
            for sid, s in id_pairs(source_path, "id<TAB>sentence")]
    rows += [_retrieval(tid, "en", "target", t) for tid, t in id_pairs(target_path, "id<TAB>sentence")]
    return rows


# ---------------------------------------------------------------- file discovery

@dataclass(frozen=True)
class Files:
    """Where a task's files are: a glob (relative to the data folder), a regex with
    named groups `split` and/or `lang` over the relative path, fixed split/lang where the
    file name has none, split renames ("val" -> "dev"), and the reader. `companion`: a
    second file the reader needs beside the matched one (a name pattern with {split} /
    {lang}); a match without it is skipped. A task may list several `Files`; the first
    that provides a (split, language) wins."""

    glob: str
    regex: str
    reader: Callable
    split: str | None = None
    lang: str | None = None
    split_names: tuple[tuple[str, str], ...] = ()
    lang_map: tuple[tuple[str, str], ...] = ()
    companion: str | None = None


_X, _E = "xtreme", "extra"
FILES: dict[str, tuple[Files, ...]] = {
    "xnli": (Files(f"{_X}/xnli/*.tsv", rf"{_X}/xnli/(?P<split>train|dev|test)-(?P<lang>[a-z]+)\.tsv", read_xtreme_pair),),
    "pawsx": (Files(f"{_X}/pawsx/*.tsv", rf"{_X}/pawsx/(?P<split>train|dev|test)-(?P<lang>[a-z]+)\.tsv",
                    read_xtreme_pair),),
    "udpos": (Files(f"{_X}/udpos/*.tsv", rf"{_X}/udpos/(?P<split>train|dev|test)-(?P<lang>[a-z]+)\.tsv", read_conll),),
    "panx": (Files(f"{_X}/panx/*.tsv", rf"{_X}/panx/(?P<split>train|dev|test)-(?P<lang>[a-z]+)\.tsv", read_conll),),
    "xquad": (Files(f"{_X}/xquad/xquad.*.json", rf"{_X}/xquad/xquad\.(?P<lang>[a-z]+)\.json", read_squad,
                    split="test"),),
    "mlqa": (Files(f"{_X}/mlqa/MLQA_V1/*/*.json",
                   rf"{_X}/mlqa/MLQA_V1/(?P<split>dev|test)/(?P=split)-context-(?P<lang>[a-z]+)-question-(?P=lang)\.json",
                   read_squad),),
    "tydiqa": (Files(f"{_X}/tydiqa/*/*.json",
                     rf"{_X}/tydiqa/tydiqa-goldp-v1\.1-(?P<split>train|dev)/tydiqa\.goldp\.(?P<lang>[a-z]+)\.(?P=split)\.json",
                     read_squad),),
    "tatoeba": (Files(f"{_E}/laser-tatoeba/data/tatoeba/v1/tatoeba.*-eng.*",
                      rf"{_E}/laser-tatoeba/data/tatoeba/v1/tatoeba\.(?P<lang>[a-z]+)-eng\.(?P=lang)",
                      read_tatoeba, split="test", lang_map=tuple(LASER_TO_ISO.items()),
                      companion="tatoeba.{lang}-eng.eng"),),
    "bucc2018": (Files(f"{_X}/bucc2018/*", rf"{_X}/bucc2018/(?P<lang>[a-z]+)-en\.(?P<split>dev|test)\.(?P=lang)",
                       read_bucc),),
    "anli": (Files(f"{_E}/anli/anlizinganli/anli_annot_v0.2/*.csv",
                   rf"{_E}/anli/anlizinganli/anli_annot_v0\.2/ANLI_analysis_r[1-3]_(?P<split>dev|test|train)\.csv",
                   read_anli, lang="en"),),
    "americasnli": (Files(f"{_E}/americasnli/data/anli_final/*/*.tsv",
                          rf"{_E}/americasnli/data/anli_final/(?P<split>dev|test)/(?P<lang>[a-z]+)\.tsv",
                          read_americasnli),),
    "myxnli": (Files(f"{_E}/myxnli/output/*/*.tsv",
                     rf"{_E}/myxnli/output/(?P<lang>[a-z]+)/(?P=lang)\.genre\.(?P<split>dev|test)\.tsv", read_myxnli),),
    # SocialIQA: v1.4 dev/test with `correct` (the XTREME mirror), and AI2's train with its labels file
    "siqa": (Files(f"{_E}/siqa/*.jsonl", rf"{_E}/siqa/socialIQa_v1\.4_(?P<split>trn|dev|tst)\.jsonl", read_siqa,
                   lang="en", split_names=(("trn", "train"), ("tst", "test"))),
             Files(f"{_E}/socialiqa-train-dev/*.jsonl", rf"{_E}/socialiqa-train-dev/(?P<split>train)\.jsonl",
                   read_siqa_with_labels, lang="en", companion="{split}-labels.lst")),
    "cosmosqa": (Files(f"{_E}/cosmosqa/data/*.csv", rf"{_E}/cosmosqa/data/(?P<split>train|valid|test)\.csv",
                       read_cosmosqa, lang="en", split_names=(("valid", "dev"),)),),
    "xcopa": (Files(f"{_E}/xcopa/*.jsonl", rf"{_E}/xcopa/(?P<split>train|val|test)-(?P<lang>[a-z]+)\.jsonl",
                    read_xcopa, split_names=(("val", "dev"),)),),
    # MultiNLI's first 15,001 training pairs in 23 languages (salesforce/xnli_extension)
    "mnli": (Files(f"{_E}/xnli-extension/data/multinli.*.tsv",
                   rf"{_E}/xnli-extension/data/multinli\.(?P<split>train)\.(?P<lang>[a-z]+)\.tsv", read_xnli_extension),),
    # SQuAD v1.1: the official file where present, else the rebuilt train file
    "squad": (Files(f"{_E}/squad/*.json", rf"{_E}/squad/(?P<split>train|dev)-v1\.1(?:\.reconstructed)?\.json",
                    read_squad, lang="en"),),
}

# Files whose row i is the same item in every language (ids are row indices): each must
# hold the rows of its source, or the rows would pair items wrongly across languages.
# (task, split) -> rows per file, as published (see ../shared/data/SOURCES.md).
ALIGNED_ROWS = {("xnli", "dev"): 2_490, ("xnli", "test"): 5_010, ("pawsx", "dev"): 2_000, ("pawsx", "test"): 2_000,
                ("myxnli", "dev"): 2_490, ("myxnli", "test"): 5_010, ("mnli", "train"): 15_001,
                ("xquad", "test"): 1_190, ("xcopa", "dev"): 100, ("xcopa", "test"): 500}


def _myxnli_languages(path: Path, lang: str) -> list[str]:
    """myXNLI files name their languages in the header (sentence1_xx columns)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline().rstrip("\r\n").split("\t")
    langs = [c[len("sentence1_"):] for c in header if c.startswith("sentence1_")]
    return langs or [lang]


@functools.lru_cache(maxsize=None)
def _sources(task: str, root: str) -> dict[tuple[str, str], tuple[Callable, tuple[str, ...]]]:
    """{(split, language): (reader, paths)} of the task's files under `root`."""
    base = Path(root)
    found: dict[tuple[str, str], tuple[Callable, list[str]]] = {}
    for spec in FILES[task]:
        pattern = re.compile(spec.regex)
        split_names, lang_map = dict(spec.split_names), dict(spec.lang_map)
        mine: dict[tuple[str, str], list[str]] = {}
        for path in sorted(base.glob(spec.glob)):
            m = pattern.fullmatch(path.relative_to(base).as_posix())
            if not m:
                continue
            groups = m.groupdict()
            raw_split = groups.get("split")
            split = split_names.get(raw_split, raw_split) or spec.split
            raw_lang = groups.get("lang") or spec.lang
            paths = [str(path)]
            if spec.companion:
                other = path.with_name(spec.companion.format(split=raw_split, lang=raw_lang))
                if not other.is_file():
                    continue
                paths.append(str(other))
            if task == "bucc2018":
                stem = path.with_name(f"{raw_lang}-en.{raw_split}")
                en, gold = Path(f"{stem}.en"), Path(f"{stem}.gold")
                if not (en.is_file() and gold.is_file()):
                    continue
                paths += [str(en), str(gold)]
            langs = _myxnli_languages(path, raw_lang) if task == "myxnli" else [lang_map.get(raw_lang, raw_lang)]
            for lang in langs:
                if task == "myxnli" or spec.companion or task == "bucc2018":
                    mine[(split, lang)] = paths
                else:
                    mine.setdefault((split, lang), []).extend(paths)
        for key, paths in mine.items():
            found.setdefault(key, (spec.reader, paths))
    return {key: (reader, tuple(paths)) for key, (reader, paths) in sorted(found.items())}


def files(task: str, root: str) -> dict[tuple[str, str], tuple[str, ...]]:
    """{(split, language): paths} of the task's files under `root` (several paths when
    a reader combines files: ANLI rounds, Tatoeba's two sides, BUCC's three files,
    SocialIQA's data and labels)."""
    return {key: paths for key, (_, paths) in _sources(task, root).items()}


def available(task: str, root: str) -> dict[str, list[str]]:
    """{split: sorted languages} present under `root`; splits in train/dev/test order."""
    out: dict[str, list[str]] = {}
    for split, lang in files(task, root):
        out.setdefault(split, []).append(lang)
    order = {"train": 0, "dev": 1, "test": 2}
    return {s: sorted(out[s]) for s in sorted(out, key=lambda s: (order.get(s, 9), s))}


def _check_aligned(task: str, split: str, path: str, n_rows: int) -> None:
    expected = ALIGNED_ROWS.get((task, split))
    if expected is None or n_rows == expected:
        return
    with open(path, "rb") as f:
        raw = f.read()
    last = raw.count(b"\n") + (not raw.endswith(b"\n"))
    where = f"line {last + 1}" if n_rows < expected and not path.endswith(".json") else "end of file"
    raise DataError(path, where, f"{n_rows:,} rows, expected {expected:,}: every {task} {split} file holds the same "
                                 f"{expected:,} items in the same order, so this one is "
                                 f"{'truncated' if n_rows < expected else 'longer than its source'}")


@contextlib.contextmanager
def gc_paused():
    """Pause Python's cyclic garbage collector while a large file becomes rows: the parse
    creates millions of objects and no cycles, and each collection would walk them all
    (SQuAD train reads in about a third of the time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@functools.lru_cache(maxsize=None)
def _read(task: str, root: str, split: str, lang: str) -> tuple[dict, ...]:
    from xfer_nb.tasks.registry import has_labels
    reader, paths = _sources(task, root)[(split, lang)]
    try:
        with gc_paused():
            rows = reader(task, paths, split, lang, has_labels(task, split, "local"))
        _check_aligned(task, split, paths[0], len(rows))
    except DataError as err:
        raise err.under(root) from None
    return tuple(rows)


def read(task: str, root: str, split: str, lang: str) -> list[dict]:
    """Rows of one task/split/language (cached per process; the caller gets a new list).
    A damaged file raises DataError naming the file (relative to `root`) and the line."""
    return list(_read(task, root, split, lang))


def _nonblank_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f.read().split(b"\n") if line.strip())


def _conll_sentences(path: str) -> int:
    with open(path, encoding="utf-8", newline="") as f:
        return sum(1 for block in _BLANK_LINES.split(f.read()) if block.strip())


_QUESTION_KEY = re.compile(rb'"question"\s*:')


def _squad_questions(path: str) -> int:
    """Questions of a SQuAD-format file without parsing it (30 MB for SQuAD train): in
    JSON a quote inside a string is escaped, so `"question":` only occurs as a key."""
    with open(path, "rb") as f:
        return len(_QUESTION_KEY.findall(f.read()))


# Counting without building rows, for the inventory. Each counter gives the number of
# rows its reader returns (for retrieval: source sentences); tests check they agree.
_COUNTERS = {
    read_xtreme_pair: _nonblank_lines,
    read_xnli_extension: lambda path: _nonblank_lines(path) - 1,  # minus the header
    read_conll: _conll_sentences,
    read_squad: _squad_questions,
    read_tatoeba: lambda path: len(_lines(path)),
    read_bucc: _nonblank_lines,
    read_myxnli: lambda path: _nonblank_lines(path) - 1,
    read_americasnli: lambda path: _nonblank_lines(path) - 1,
    read_xcopa: _nonblank_lines,
    read_siqa: _nonblank_lines,
    read_siqa_with_labels: _nonblank_lines,
}


def count(task: str, root: str, split: str, lang: str) -> int:
    """Examples in one file set (rows; for retrieval the source-side sentences), counted
    without parsing where the format allows, so the inventory stays fast."""
    reader, paths = _sources(task, root)[(split, lang)]
    counter = _COUNTERS.get(reader)
    if counter is not None:
        return counter(paths[0])
    rows = _read(task, root, split, lang)
    if TASKS[task].family == "retrieval":
        return sum(r["side"] == "source" for r in rows)
    return len(rows)
