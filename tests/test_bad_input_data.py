"""What bad data files get: the list of promises for damaged files in the data folder.

Every test copies real files of ../shared/data into a temporary folder laid out the same
way, damages one copy as a user's copy gets damaged (a download cut inside a record, cut
at a record boundary, bytes that are not UTF-8, an empty file, truncated JSON or JSON
lines, a label outside the label set, a labels file out of step with its data), and
checks three things:

* loading raises `DataError` (a ValueError) whose message names the file, relative to
  the data folder, and the line (a JSON location where a file has no useful lines), and
  says what was expected;
* nothing wrong is returned silently: no row is dropped, no label becomes "no label";
* the intact files beside it still load, with their full row counts.

Bad params and runs are covered by tests/test_bad_input.py; this file is about data.
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

from xfer_nb import tasks
from xfer_nb.data import sample_intermediate
from xfer_nb.tasks.local import DataError


def _copy(data_dir, tmp_path, *relative):
    """A data folder under tmp_path holding copies of `relative` files (paths inside
    ../shared/data), writable, laid out as in the real folder."""
    root = tmp_path / "data"
    for rel in relative:
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_dir / rel, target)
        os.chmod(target, 0o644)
    return root


def _lines(path):
    return path.read_bytes().split(b"\n")


def _write_lines(path, lines):
    path.write_bytes(b"\n".join(lines))


def _raises(task, lang, split, root, *patterns):
    """Load and return the DataError message, checking each regex pattern is in it."""
    with pytest.raises(DataError) as info:
        tasks.load(task, lang, split, data_dir=root)
    message = str(info.value)
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
    return message


XNLI_DE, XNLI_EN = "xtreme/xnli/dev-de.tsv", "xtreme/xnli/dev-en.tsv"


# ---------------------------------------------------------------- TSV cut inside a record

@pytest.mark.parametrize("cut, expected", [
    (lambda last: last.split(b"\t")[0] + b"\t" + last.split(b"\t")[1],    # label column lost
     r"line 2490: 2 fields, expected 3 \(sentence1, sentence2, label\); the file may be cut inside a record"),
    (lambda last: last.split(b"\t")[0].decode()[:20].encode(),              # cut inside sentence1
     r"line 2490: 1 field, expected 3"),
    (lambda last: last.split(b"\t")[0][:last.index("ä".encode()) + 1],     # cut inside a character
     r"line 2490: the file ends inside a character \(a cut multi-byte UTF-8 sequence\): it is truncated"),
    (lambda last: last.rsplit(b"\t", 1)[0] + b"\t",                         # empty label
     r"line 2490: empty label; expected one of entailment, neutral, contradiction"),
    (lambda last: last.rsplit(b"\t", 1)[0] + b"\tneutr",                    # cut inside the label
     r"line 2490: label 'neutr' is not one of entailment, neutral, contradiction"),
])
def test_xnli_tsv_cut_inside_the_last_record(data_dir, tmp_path, cut, expected):
    root = _copy(data_dir, tmp_path, XNLI_DE, XNLI_EN)
    lines = _lines(root / XNLI_DE)
    assert lines[-1] == b"" and len(lines) == 2491
    lines = lines[:-2] + [cut(lines[-2].rstrip(b"\r"))]   # the file ends inside its last record
    _write_lines(root / XNLI_DE, lines)
    message = _raises("xnli", "de", "dev", root, r"^xtreme/xnli/dev-de\.tsv ", expected)
    assert str(root) in message   # the data folder, named once
    assert len(tasks.load("xnli", "en", "dev", data_dir=root)) == 2490   # the intact file still loads


def test_xnli_tsv_cut_at_a_record_boundary_fails_on_the_row_count(data_dir, tmp_path):
    """Every field is there, but rows align across languages by line: a short file would
    pair items wrongly, so it fails with the count of its source."""
    root = _copy(data_dir, tmp_path, XNLI_DE, XNLI_EN)
    _write_lines(root / XNLI_DE, _lines(root / XNLI_DE)[:2000] + [b""])
    _raises("xnli", "de", "dev", root, r"^xtreme/xnli/dev-de\.tsv line 2001: 2,000 rows, expected 2,490: every xnli "
                                       r"dev file holds the same 2,490 items in the same order, so this one is truncated")
    with pytest.raises(DataError, match="2,000 rows, expected 2,490"):
        sample_intermediate("xnli", ["en", "de"], 100, seed=0, data_dir=root)   # sampling reads through the check
    assert len(tasks.load("xnli", "en", "dev", data_dir=root)) == 2490


def test_a_blank_line_inside_a_tsv_is_named(data_dir, tmp_path):
    root = _copy(data_dir, tmp_path, XNLI_DE)
    lines = _lines(root / XNLI_DE)
    _write_lines(root / XNLI_DE, lines[:99] + [b""] + lines[99:])
    _raises("xnli", "de", "dev", root, r"^xtreme/xnli/dev-de\.tsv line 100: 1 field, expected 3")


def test_non_utf8_bytes_name_their_line_and_column(data_dir, tmp_path):
    root = _copy(data_dir, tmp_path, XNLI_DE, XNLI_EN)
    lines = _lines(root / XNLI_DE)
    lines[41] = b"Ein \xff" + lines[41]   # line 42, a Latin-1 byte
    _write_lines(root / XNLI_DE, lines)
    _raises("xnli", "de", "dev", root, r"^xtreme/xnli/dev-de\.tsv line 42: byte b'\\xff' at column 5 is not UTF-8")
    assert len(tasks.load("xnli", "en", "dev", data_dir=root)) == 2490


@pytest.mark.parametrize("content, problem", [(b"", "the file is empty"), (b"\n\n", "the file holds only blank space")])
def test_an_empty_file_is_named(data_dir, tmp_path, content, problem):
    root = _copy(data_dir, tmp_path, XNLI_DE, XNLI_EN, "xtreme/xquad/xquad.de.json", "xtreme/xquad/xquad.en.json")
    (root / XNLI_DE).write_bytes(content)
    (root / "xtreme/xquad/xquad.de.json").write_bytes(content)
    _raises("xnli", "de", "dev", root, rf"^xtreme/xnli/dev-de\.tsv line 1: {problem}")
    _raises("xquad", "de", "test", root, rf"^xtreme/xquad/xquad\.de\.json line 1: {problem}")
    assert len(tasks.load("xquad", "en", "test", data_dir=root)) == 1190


# ---------------------------------------------------------------- the new pools

MNLI = "extra/xnli-extension/data/multinli.train.{}.tsv"


def test_xnli_extension_checks_header_fields_and_rows(data_dir, tmp_path):
    root = _copy(data_dir, tmp_path, *(MNLI.format(lang) for lang in ("sw", "az", "en")))
    sw, az = root / MNLI.format("sw"), root / MNLI.format("az")
    lines = _lines(sw)
    _write_lines(sw, lines[:5001] + [b""])            # header + 5,000 pairs: cut at a record boundary
    lines = _lines(az)                                # az has CRLF line ends
    lines[7] = lines[7].replace(b"\tentailment\r", b"\t\r").replace(b"\tneutral\r", b"\t\r").replace(
        b"\tcontradictory\r", b"\t\r")
    _write_lines(az, lines)
    _raises("mnli", "sw", "train", root, r"^extra/xnli-extension/data/multinli\.train\.sw\.tsv line 5002: 5,000 rows, "
                                         r"expected 15,001")
    _raises("mnli", "az", "train", root, r"^extra/xnli-extension/data/multinli\.train\.az\.tsv line 8: empty label")
    with pytest.raises(DataError, match=r"multinli\.train\.sw\.tsv line 5002"):
        sample_intermediate("mnli", ["en", "sw"], 1000, seed=0, data_dir=root)
    en = sample_intermediate("mnli", ["en"], 1000, seed=0, data_dir=root)   # the intact language still samples
    assert len(en) == 1000 and len(tasks.load("mnli", "en", "train", data_dir=root)) == 15_001


def test_xnli_extension_without_its_header(data_dir, tmp_path):
    root = _copy(data_dir, tmp_path, MNLI.format("en"))
    path = root / MNLI.format("en")
    _write_lines(path, _lines(path)[1:])
    _raises("mnli", "en", "train", root, r"line 1: header \[.*\], expected \['premise', 'hypo', 'label'\]")


SQUAD = "extra/squad/train-v1.1.reconstructed.json"


def test_truncated_squad_json_names_the_line(data_dir, tmp_path):
    root = _copy(data_dir, tmp_path, SQUAD)
    raw = (root / SQUAD).read_bytes()
    (root / SQUAD).write_bytes(raw[: len(raw) // 2])
    _raises("squad", "en", "train", root, r"^extra/squad/train-v1\.1\.reconstructed\.json line \d+: not valid JSON: "
                                          r".* the file may be truncated")


def test_a_squad_answer_off_its_offset_or_missing_is_named(data_dir, tmp_path):
    import json
    xquad = "xtreme/xquad/xquad.de.json"
    root = _copy(data_dir, tmp_path, xquad, "xtreme/xquad/xquad.en.json")
    data = json.loads((root / xquad).read_text(encoding="utf-8"))
    data["data"][2]["paragraphs"][1]["qas"][0]["answers"][0]["answer_start"] += 3
    del data["data"][3]["paragraphs"][0]["qas"][1]["question"]
    (root / xquad).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    _raises("xquad", "de", "test", root,
            r"^xtreme/xquad/xquad\.de\.json data\[2\]\.paragraphs\[1\]\.qas\[0\]\.answers\[0\]: answer .* is not at "
            r"answer_start=\d+ of its context")
    data["data"][2]["paragraphs"][1]["qas"][0]["answers"][0]["answer_start"] -= 3
    (root / xquad).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    tasks._load_local.cache_clear()
    from xfer_nb.tasks import local
    local._read.cache_clear()
    _raises("xquad", "de", "test", root, r"data\[3\]\.paragraphs\[0\]\.qas\[1\]: no 'question' field")
    assert len(tasks.load("xquad", "en", "test", data_dir=root)) == 1190


SIQA = "extra/socialiqa-train-dev/"


def test_truncated_jsonl_and_labels_out_of_step(data_dir, tmp_path):
    root = _copy(data_dir, tmp_path, SIQA + "train.jsonl", SIQA + "train-labels.lst", "extra/siqa/socialIQa_v1.4_dev.jsonl")
    lines = _lines(root / SIQA / "train.jsonl")
    assert len(lines) == 33_411 and lines[-1] == b""
    _write_lines(root / SIQA / "train.jsonl", lines[:-2] + [lines[-2][:40]])   # cut inside the last object
    _raises("siqa", "en", "train", root, r"^extra/socialiqa-train-dev/train\.jsonl line 33410: not valid JSON")
    assert len(tasks.load("siqa", "en", "dev", data_dir=root)) == 1954       # the evaluation split is intact


def test_siqa_labels_file_short_or_out_of_range(data_dir, tmp_path):
    root = _copy(data_dir, tmp_path, SIQA + "train.jsonl", SIQA + "train-labels.lst")
    labels = _lines(root / SIQA / "train-labels.lst")
    _write_lines(root / SIQA / "train-labels.lst", labels[:30_000] + [b""])
    _raises("siqa", "en", "train", root, r"^extra/socialiqa-train-dev/train-labels\.lst line 30001: train-labels\.lst "
                                         r"has 30,000 labels but train\.jsonl has 33,410 rows")
    other = _copy(data_dir, tmp_path / "b", SIQA + "train.jsonl", SIQA + "train-labels.lst")
    labels[11] = b"4"
    _write_lines(other / SIQA / "train-labels.lst", labels)
    _raises("siqa", "en", "train", other, r"train-labels\.lst line 12: label '4' is not one of 1, 2, 3")


def test_jsonl_row_missing_a_field(data_dir, tmp_path):
    path = "extra/xcopa/val-sw.jsonl"
    root = _copy(data_dir, tmp_path, path, "extra/xcopa/val-qu.jsonl")
    lines = _lines(root / path)
    lines[4] = lines[4].replace(b'"choice2"', b'"choiceX"')
    _write_lines(root / path, lines)
    _raises("xcopa", "sw", "dev", root, r"^extra/xcopa/val-sw\.jsonl line 5: no 'choice2' field")
    assert len(tasks.load("xcopa", "qu", "dev", data_dir=root)) == 100


# ---------------------------------------------------------------- other formats

def test_conll_line_without_its_tag(data_dir, tmp_path):
    path = "xtreme/udpos/test-yo.tsv"
    root = _copy(data_dir, tmp_path, path, "xtreme/udpos/test-wo.tsv")
    lines = _lines(root / path)
    n = next(i for i, line in enumerate(lines) if i > 50 and line.strip())
    lines[n] = lines[n].split(b"\t")[0]
    _write_lines(root / path, lines)
    _raises("udpos", "yo", "test", root, rf"^xtreme/udpos/test-yo\.tsv line {n + 1}: 1 field, expected 2 \(token, tag\)")
    lines[n] += b"\tNOUNISH"
    _write_lines(root / path, lines)
    from xfer_nb.tasks import local
    local._read.cache_clear()
    _raises("udpos", "yo", "test", root, rf"line {n + 1}: tag 'NOUNISH'; expected one of ADJ, ADP")
    assert len(tasks.load("udpos", "wo", "test", data_dir=root)) > 0


def test_csv_cut_inside_a_quoted_record(data_dir, tmp_path):
    path = "extra/cosmosqa/data/valid.csv"
    root = _copy(data_dir, tmp_path, path)
    raw = (root / path).read_bytes()
    (root / path).write_bytes(raw[: raw.index(b"\n", len(raw) // 2) + 200])   # ends inside a quoted context
    message = _raises("cosmosqa", "en", "dev", root, r"^extra/cosmosqa/data/valid\.csv line \d+: \d fields?, expected 8 "
                                                     r"\(id, context, question, answer0, answer1, answer2, answer3, label\)")
    line = int(re.search(r"line (\d+)", message).group(1))
    assert line == (root / path).read_bytes().count(b"\n") + 1   # the last, cut line


def test_tatoeba_sides_out_of_step(data_dir, tmp_path):
    laser = "extra/laser-tatoeba/data/tatoeba/v1/"
    root = _copy(data_dir, tmp_path, laser + "tatoeba.swh-eng.swh", laser + "tatoeba.swh-eng.eng")
    _write_lines(root / laser / "tatoeba.swh-eng.eng", _lines(root / laser / "tatoeba.swh-eng.eng")[:300] + [b""])
    _raises("tatoeba", "sw", "test", root, r"^extra/laser-tatoeba/data/tatoeba/v1/tatoeba\.swh-eng\.eng line 301: "
                                           r"tatoeba\.swh-eng\.swh has 390 lines but tatoeba\.swh-eng\.eng has 300")


def test_the_cli_reports_a_damaged_file_with_exit_2(data_dir, tmp_path):
    from xfer_nb.paths import REPO_ROOT
    root = _copy(data_dir, tmp_path, XNLI_DE)
    lines = _lines(root / XNLI_DE)
    _write_lines(root / XNLI_DE, lines[:-2] + [lines[-2].rsplit(b"\t", 1)[0]])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "XFER_NB_DATA": str(root)}
    proc = subprocess.run([sys.executable, "-m", "xfer_nb.cli", "data", "xnli", "de"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "xtreme/xnli/dev-de.tsv line 2490: 2 fields, expected 3 (sentence1, sentence2, label)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_every_real_file_passes_the_checks(data_dir):
    """The checks refuse damaged copies, not the real data: every (task, split, language)
    of ../shared/data loads (the largest files are covered by the pool tests)."""
    from xfer_nb.tasks import local
    skip = {("mnli", "train"), ("squad", "train"), ("siqa", "train"), ("udpos", "train")}
    for name in local.FILES:
        for split, langs in tasks.available(name, data_dir=data_dir).items():
            if (name, split) in skip:
                continue
            for lang in langs:
                assert local.read(name, str(data_dir), split, lang), (name, split, lang)
