"""The study index, from real run folders: a toy plan swept through papermill (one
intermediate and one target run fail, their downstream runs are skipped), then the
page checked as HTML: one row per run, statuses, errors and last cells of the failed
runs, links that resolve to the rendered notebooks, and the link from the report."""
from __future__ import annotations

import html
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from xfer_nb import index_page, lab, lab_hooks
from xfer_nb import notebook_runner as R, sweep as S

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "tests" / "notebooks"
sys.path.insert(0, str(NOTEBOOKS))
import toyplan  # noqa: E402

R.fast_jupyter_imports()


class Table(HTMLParser):
    """The rows of the index table: (class, data-* attributes, cell texts, hrefs)."""

    def __init__(self):
        super().__init__()
        self.rows, self.row, self.cell, self.head = [], None, None, []
        self.in_head = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "thead":
            self.in_head = True
        elif tag == "tr" and not self.in_head:
            self.row = {"class": attrs.get("class", ""), "attrs": attrs, "cells": [], "hrefs": []}
        elif tag in ("td", "th"):
            self.cell = []
        elif tag == "a" and self.row is not None:
            self.row["hrefs"].append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "thead":
            self.in_head = False
        elif tag == "th":
            self.head.append("".join(self.cell))
        elif tag == "td" and self.row is not None:
            self.row["cells"].append("".join(self.cell))
        elif tag == "tr" and self.row is not None:
            self.rows.append(self.row)
            self.row = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


@pytest.fixture(scope="module")
def failing(tmp_path_factory):
    outputs = tmp_path_factory.mktemp("index")
    plan = toyplan.failing_plan()
    plan.params["axes"] = {"value": [2, 20, 30, 300, 400, 500]}
    summary = S.sweep(plan, outputs, workers=1, notebooks_dir=NOTEBOOKS, progress=False, quiet=True)
    return plan, summary, outputs


@pytest.mark.slow
def test_a_sweep_writes_the_index_with_every_run(failing):
    plan, summary, outputs = failing
    index = outputs / "reports" / "failing-index.html"
    assert index.is_file(), "the sweep writes the index"
    parsed = Table()
    parsed.feed(index.read_text())
    assert parsed.head == ["stage", "value", "status", "wall time (s)", "validation score", "headline metric",
                           "notebook"]
    runs = [r for r in parsed.rows if r["class"] == "run"]
    assert [r["cells"][0] for r in runs] == [s.stage for s in plan.all_specs()]
    by_value = {r["cells"][1]: r for r in runs}
    status = {v: r["cells"][2] for v, r in by_value.items()}
    assert status == {"2": "done", "20": "done", "30": "failed", "300": "done", "400": "failed", "500": "skipped"}
    for r in runs:
        if r["cells"][2] == "skipped":
            assert not r["hrefs"], "a skipped run has no notebook"
            continue
        assert len(r["hrefs"]) == 1
        target = (index.parent / html.unescape(r["hrefs"][0])).resolve()
        assert target.name == "notebook.html" and target.is_file(), target
        assert float(r["cells"][3]) > 0, "wall time"
    # each failed run is followed by its error and the cell that raised; the skipped one says why
    details = {i: row for i, row in enumerate(parsed.rows) if "detail" in row["class"]}
    failed_details = [parsed.rows[i]["cells"][0] for i in details if parsed.rows[i - 1]["cells"][2] == "failed"]
    assert len(failed_details) == 2
    for text in failed_details:
        assert "ValueError: deliberate failure" in text and "last cell:" in text and "raise ValueError" in text
    skipped = [parsed.rows[i]["cells"][0] for i in details if parsed.rows[i - 1]["cells"][2] == "skipped"]
    assert skipped and "upstream" in skipped[0]
    # sortable and filterable in the page itself, with no external resource
    text = index.read_text()
    assert 'id="filter"' in text and "addEventListener(\"click\"" in text
    assert not re.search(r"(src|href)=\"https?://", text), "self-contained"


@pytest.mark.slow
def test_index_links_the_report_and_the_report_links_back(failing):
    plan, _, outputs = failing
    report = outputs / "reports" / "failing.html"
    report.write_text("<!DOCTYPE html><html><head></head><body><h1>report</h1></body></html>")
    index = index_page.write_index(plan, outputs)
    assert 'id="report-link" href="failing.html"' in index.read_text()
    body = report.read_text()
    assert body.count(index_page.LINK_MARK) == 1 and 'href="failing-index.html"' in body
    assert body.index("<body>") < body.index(index_page.LINK_MARK) < body.index("<h1>")
    index_page.write_index(plan, outputs)
    assert report.read_text().count(index_page.LINK_MARK) == 1, "linked once, however often rebuilt"


def test_lab_save_hook_strips_outputs_and_kernel_metadata():
    import json

    import nbformat

    committed = ROOT / "notebooks" / "03_target_training.ipynb"
    nb = json.loads(committed.read_text())
    run = json.loads(json.dumps(nb))
    code = [c for c in run["cells"] if c["cell_type"] == "code"]
    code[1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "hi\n"}]
    code[1]["execution_count"] = 3
    run["metadata"]["language_info"] = {"name": "python", "version": "3.11.2", "mimetype": "text/x-python"}
    run["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    model = {"type": "notebook", "content": run}
    lab_hooks.strip_outputs(model, path="03_target_training.ipynb", contents_manager=None)
    assert nbformat.writes(nbformat.from_dict(model["content"])) + "\n" == committed.read_text()
    lab_hooks.strip_outputs({"type": "file", "content": "text"})  # other files pass untouched
    assert "--ContentsManager.pre_save_hook=xfer_nb.lab_hooks.strip_outputs" in lab.lab_command(8888)[0]


@pytest.mark.slow
def test_smoke_study_index_and_report_rebuilt_without_training(smoke):
    import json
    import subprocess
    import time

    out, _, env, _ = smoke
    index, report = out / "reports" / "smoke-index.html", out / "reports" / "smoke.html"
    parsed = Table()
    parsed.feed(index.read_text())
    assert parsed.head[:6] == ["stage", "intermediate_task", "intermediate_size", "language_set", "target_task", "seed"]
    runs = [r for r in parsed.rows if r["class"] == "run"]
    assert len(runs) == 8 and {r["cells"][6] for r in runs} == {"done"}
    targets = [r for r in runs if r["cells"][0] == "target"]
    assert sorted((r["cells"][1], r["cells"][4]) for r in targets) == sorted(
        (t, k) for t in ("none", "xnli") for k in ("pawsx", "tatoeba", "udpos"))
    assert all(re.match(r"(pawsx accuracy|udpos f1|tatoeba accuracy) \d+\.\d \(mean of \d languages\)", r["cells"][9])
               for r in targets), [r["cells"][9] for r in targets]
    for r in runs:
        assert (index.parent / html.unescape(r["hrefs"][0])).resolve().is_file()
    assert "smoke-index.html" in report.read_text(), "the study report links the index"

    trained = {p: p.stat().st_mtime_ns for p in out.glob("runs/[pit]*/*/DONE.json")}
    assert len(trained) == 8
    index.unlink()
    report.unlink()
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "xfer_nb.cli", "report", "params/smoke.yaml", "--outputs", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - started
    print(f"xfer-nb report on the smoke study: {seconds:.1f} s")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert index.is_file() and report.is_file() and "smoke-index.html" in report.read_text()
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/[pit]*/*/DONE.json")} == trained, "no run was redone"
    assert json.loads(next(out.glob("runs/analysis/*/DONE.json")).read_text())["seconds"] > 0


def test_the_index_shows_the_validation_score_not_the_threshold_beside_it(tmp_path):
    from xfer_nb import index_page, learning
    verdict = learning.verdict(["mnli"], 45.8, None)   # below chance + 15: did not learn
    rows = learning.metric_rows("run", "intermediate", "mnli", verdict, 500)
    assert {r["metric"] for r in rows} >= {"validation_score", "chance", "learning_threshold", "learned"}
    assert index_page._validation_score(tmp_path, {}, rows) == pytest.approx(45.8)
    assert index_page._learned({}, rows) is False
    prepare_rows = [{"split": "validation", "metric": "examples", "value": 500}]
    assert index_page._validation_score(tmp_path, {}, prepare_rows) is None


def test_a_prepare_run_s_headline_counts_training_rows_apart_from_held_out_ones():
    from xfer_nb import index_page
    rows = [{"split": "train", "metric": "examples", "value": 64, "language": "en"},
            {"split": "validation", "metric": "examples", "value": 500, "language": "all"}]
    assert index_page._headline("prepare", rows) == ("64 training examples + 500 held out", 64.0)
