"""The study index: one self-contained HTML page listing every run of a plan.

`outputs/reports/<study>-index.html` has one row per run (stage, every axis value,
status, wall time, validation score, headline metric, and a relative link to the run's
rendered notebook); a failed run shows its error and the cell that raised (from its
FAILED.json). Rows sort by clicking a column header and filter by text, stage and
status, in plain HTML and JavaScript: no server, no network, so the page can be shared
as a file or together with the outputs folder.

It reads only what runs left on disk (config.json, DONE.json, FAILED.json,
metrics.jsonl, train_log.jsonl), so it is cheap to rebuild at any time
(`xfer-nb report`). `link_report` adds a link to the index at the top of the rendered
study report, because the report is rendered from a notebook this module does not own.
"""
from __future__ import annotations

import html
import json
import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xfer_nb import io
from xfer_nb.paths import output_path, outputs_dir
from xfer_nb.runs import DONE, FAILED, METRICS, is_done

HTML_NAME = "notebook.html"
TRAIN_LOG = "train_log.jsonl"
STAGES = ("prepare", "intermediate", "target")
LINK_MARK = "xfer-nb-index-link"


@dataclass
class Row:
    """What the index says about one run."""

    stage: str
    run_id: str
    axes: dict[str, Any]
    status: str                       # done / failed / skipped / not run
    seconds: float | None = None
    validation: float | None = None
    learned: bool | None = None   # below its learning threshold: False
    headline: str = ""
    headline_value: float | None = None
    link: str | None = None           # relative to the index page
    error: str | None = None
    last_cell: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def index_path(plan: Any, outputs: str | os.PathLike | None = None) -> Path:
    return output_path(outputs, "reports", f"{plan.name}-index.html")


def report_path(plan: Any, outputs: str | os.PathLike | None = None) -> Path:
    return output_path(outputs, "reports", f"{plan.name}.html")


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _read_jsonl(path: Path) -> list[dict]:
    try:
        return io.read_jsonl(path)
    except (OSError, ValueError):
        return []


def _axis_values(plan: Any) -> dict[str, dict[str, Any]]:
    """Axis values of every run: a target run's from its grid point; an upstream run's
    are the values shared by every grid point it serves ('*' where they differ)."""
    axes = list(((getattr(plan, "params", None) or {}).get("axes") or {}).keys())
    by_id = {s.run_id: s for s in plan.all_specs()}
    served: dict[str, list[dict]] = {}
    for point in getattr(plan, "points", []):
        rid = point["target_run"]
        chain = [rid]
        while chain[-1] in by_id and by_id[chain[-1]].upstream:
            chain.append(next(iter(by_id[chain[-1]].upstream.values())))
        for r in chain:
            served.setdefault(r, []).append(point)
    out: dict[str, dict[str, Any]] = {}
    for spec in plan.all_specs():
        points = served.get(spec.run_id, [])
        values = {}
        for axis in axes:
            seen = {json.dumps(p.get(axis), sort_keys=True) for p in points if axis in p}
            if axis in spec.config:
                values[axis] = spec.config[axis]
            elif len(seen) == 1:
                values[axis] = json.loads(seen.pop())
            else:
                values[axis] = "*" if seen else ""
        out[spec.run_id] = values
    return out


def _validation_score(run_dir: Path, done: dict | None, metrics: list[dict]) -> float | None:
    """The validation score a run recorded: its `validation_score` metric (split 'validation';
    not the chance level, threshold or counts beside it), else DONE.json's, else the best of
    the training log's validation entries. None when it was not validated."""
    from xfer_nb import learning
    found = learning.from_metrics(metrics)
    if found is not None and _finite(found["validation_score"]):
        return float(found["validation_score"])
    for key in ("best_validation_score", "validation_score"):
        if done and _finite(done.get(key)):
            return float(done[key])
    scores = [e["validation_score"] for e in _read_jsonl(run_dir / TRAIN_LOG) if _finite(e.get("validation_score"))]
    return float(max(scores)) if scores else None


def _learned(done: dict | None, metrics: list[dict]) -> bool | None:
    """The run's learning verdict (xfer_nb.learning), None where it had none."""
    from xfer_nb import learning
    found = learning.from_metrics(metrics)
    if found is not None:
        return found["learned"]
    return done.get("learned") if done and isinstance(done.get("learned"), bool) else None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _headline(stage: str, metrics: list[dict]) -> tuple[str, float | None]:
    """One number per run: a target run's mean primary metric over its evaluation
    languages; an intermediate run's final training loss; a prepare run's examples."""
    if stage == "target":
        from xfer_nb.evaluate import PRIMARY_METRIC

        evals = [r for r in metrics if r.get("split") not in ("train", "validation") and _finite(r.get("value"))]
        if not evals:
            return "", None
        task = evals[0].get("task", "")
        metric = PRIMARY_METRIC.get(task, evals[0]["metric"])
        values = [r["value"] for r in evals if r["metric"] == metric] or [r["value"] for r in evals
                                                                          if r["metric"] == evals[0]["metric"]]
        metric = metric if any(r["metric"] == metric for r in evals) else evals[0]["metric"]
        mean = statistics.fmean(values)
        return f"{task} {metric} {mean:.1f} (mean of {len(values)} languages)", mean
    if stage == "intermediate":
        loss = [r["value"] for r in metrics if r.get("metric") == "final_loss" and _finite(r.get("value"))]
        return (f"final loss {loss[-1]:.3f}", float(loss[-1])) if loss else ("", None)
    if stage == "prepare":
        def count(split: str) -> int:
            return int(sum(r["value"] for r in metrics if r.get("metric") == "examples" and r.get("split") == split
                           and _finite(r.get("value"))))
        n, held = count("train"), count("validation")
        text = f"{n} training examples" + (f" + {held} held out" if held else "")
        return (text, float(n)) if n else ("", None)
    return "", None


def collect(plan: Any, outputs: str | os.PathLike | None = None, outcomes: list | None = None) -> list[Row]:
    """One Row per run of the plan, in stage order, from what the run folders hold.

    `outcomes` (a sweep's `Outcome`s) add what left no folder: why a run was skipped."""
    outputs = outputs_dir(outputs)
    reports = outputs / "reports"
    told = {o.run_id: o for o in outcomes or []}
    axes = _axis_values(plan)
    status_of: dict[str, str] = {}
    rows = []
    for spec in plan.all_specs():
        run_dir = spec.dir(outputs)
        done = _read_json(run_dir / DONE) if is_done(run_dir) else None
        failed = None if done else _read_json(run_dir / FAILED)
        metrics = _read_jsonl(run_dir / METRICS) if done else []
        outcome = told.get(spec.run_id)
        error = last_cell = None
        if done is not None:
            status = "done"
        elif failed is not None:
            status, error, last_cell = "failed", failed.get("error"), failed.get("last_cell")
        else:
            bad_up = [rid for rid in spec.upstream.values() if status_of.get(rid) in ("failed", "skipped")]
            if bad_up or (outcome is not None and outcome.status == "skipped"):
                status = "skipped"
                error = (outcome.error if outcome is not None and outcome.error
                         else f"upstream run {bad_up[0]} is {status_of[bad_up[0]]}")
            else:
                status = "not run"
                if outcome is not None and outcome.error:
                    error = outcome.error
        status_of[spec.run_id] = status
        headline, value = _headline(spec.stage, metrics)
        page = run_dir / HTML_NAME
        seconds = done.get("seconds") if done else (outcome.seconds if outcome is not None and status == "failed" else None)
        rows.append(Row(stage=spec.stage, run_id=spec.run_id, axes=axes.get(spec.run_id, {}), status=status,
                        seconds=float(seconds) if _finite(seconds) else None,
                        validation=_validation_score(run_dir, done, metrics) if done else None,
                        learned=_learned(done, metrics) if done else None,
                        headline=headline, headline_value=value,
                        link=os.path.relpath(page, reports) if page.is_file() else None,
                        error=error, last_cell=last_cell))
    return rows


def _cell(text: Any, sort: Any = None, cls: str = "") -> str:
    key = "" if sort is None else f' data-sort="{html.escape(str(sort), quote=True)}"'
    klass = f' class="{cls}"' if cls else ""
    return f"<td{key}{klass}>{html.escape('' if text is None else str(text))}</td>"


def _fmt_axis(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(map(str, value))
    return "" if value is None else str(value)


def render(plan: Any, rows: list[Row], report_link: str | None = None) -> str:
    """The index page as one HTML string (inline CSS and JavaScript only)."""
    axes = list(((getattr(plan, "params", None) or {}).get("axes") or {}).keys())
    counts = {s: sum(r.status == s for r in rows) for s in ("done", "failed", "skipped", "not run")}
    head = ["stage", *axes, "status", "wall time (s)", "validation score", "headline metric", "notebook"]
    numeric = {"wall time (s)", "validation score", "headline metric"} | {
        a for a in axes if all(isinstance(r.axes.get(a), (int, float)) or r.axes.get(a) in ("", "*") for r in rows)}
    ths = "".join(f'<th data-col="{i}" data-type="{"num" if h in numeric else "text"}" title="sort">'
                  f"{html.escape(h)}</th>" for i, h in enumerate(head))
    body = []
    for r in rows:
        cells = [_cell(r.stage)]
        cells += [_cell(_fmt_axis(r.axes.get(a))) for a in axes]
        cells.append(_cell(r.status, cls=f"status {r.status.replace(' ', '-')}"))
        cells.append(_cell("" if r.seconds is None else f"{r.seconds:.1f}", r.seconds))
        text = "" if r.validation is None else f"{r.validation:.1f}" + (" (did not learn)" if r.learned is False else "")
        cells.append(_cell(text, r.validation, "not-learned" if r.learned is False else ""))
        cells.append(_cell(r.headline, r.headline_value))
        if r.link:
            href = html.escape(Path(r.link).as_posix(), quote=True)
            cells.append(f'<td><a class="run-link" href="{href}" title="{html.escape(r.run_id, quote=True)}">'
                         f"{html.escape(r.run_id)}</a></td>")
        else:
            cells.append(_cell(r.run_id))
        body.append(f'<tr class="run" data-stage="{html.escape(r.stage)}" data-status="{html.escape(r.status)}">'
                    + "".join(cells) + "</tr>")
        if r.error or r.last_cell:
            detail = f"<b>error:</b> <code>{html.escape(r.error or '')}</code>"
            if r.last_cell:
                detail += f"<br><b>last cell:</b><pre>{html.escape(r.last_cell)}</pre>"
            body.append(f'<tr class="detail {r.status.replace(" ", "-")}"><td colspan="{len(head)}">{detail}</td></tr>')
    stage_opts = "".join(f'<option value="{s}">{s}</option>' for s in STAGES if any(r.stage == s for r in rows))
    status_opts = "".join(f'<option value="{s}">{s} ({n})</option>' for s, n in counts.items() if n)
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    report = (f'<p>Study report: <a id="report-link" href="{html.escape(report_link, quote=True)}">'
              f"{html.escape(report_link)}</a></p>") if report_link else ""
    title = f"{plan.name}: index of runs"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }}
th {{ background: #f0f0f0; cursor: pointer; position: sticky; top: 0; user-select: none; }}
th.asc::after {{ content: " \\25B2"; }} th.desc::after {{ content: " \\25BC"; }}
td.status.done {{ color: #1a7f37; }} td.status.failed {{ color: #c62828; font-weight: bold; }}
td.not-learned {{ color: #b26a00; }}
td.status.skipped, td.status.not-run {{ color: #8a6d00; }}
tr.detail td {{ background: #fff5f5; }} tr.detail pre {{ white-space: pre-wrap; margin: 2px 0; max-width: 110ch; }}
.controls {{ margin: 0.8em 0; }} .controls > * {{ margin-right: 1em; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>{len(rows)} runs: {html.escape(summary)}. Click a column header to sort; a run's id opens its rendered notebook.</p>
{report}
<div class="controls">
<label>filter <input id="filter" type="search" placeholder="text in any column"></label>
<label>stage <select id="stage"><option value="">all</option>{stage_opts}</select></label>
<label>status <select id="status"><option value="">all</option>{status_opts}</select></label>
<span id="shown"></span>
</div>
<table id="runs"><thead><tr>{ths}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table>
<script>
(function () {{
  var tbody = document.querySelector("#runs tbody");
  // each run row carries its detail row (error, last cell) along when sorted or filtered
  var groups = [];
  Array.prototype.forEach.call(tbody.rows, function (tr) {{
    if (tr.classList.contains("run")) groups.push([tr]); else groups[groups.length - 1].push(tr);
  }});
  function key(tr, col, type) {{
    var td = tr.cells[col], v = td.hasAttribute("data-sort") ? td.getAttribute("data-sort") : td.textContent;
    if (type === "num") {{ var x = parseFloat(v); return isNaN(x) ? -Infinity : x; }}
    return v.toLowerCase();
  }}
  document.querySelectorAll("#runs th").forEach(function (th) {{
    th.addEventListener("click", function () {{
      var col = +th.dataset.col, type = th.dataset.type, asc = !th.classList.contains("asc");
      document.querySelectorAll("#runs th").forEach(function (h) {{ h.classList.remove("asc", "desc"); }});
      th.classList.add(asc ? "asc" : "desc");
      groups.sort(function (a, b) {{
        var x = key(a[0], col, type), y = key(b[0], col, type);
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      }});
      groups.forEach(function (g) {{ g.forEach(function (tr) {{ tbody.appendChild(tr); }}); }});
    }});
  }});
  function filter() {{
    var text = document.getElementById("filter").value.toLowerCase();
    var stage = document.getElementById("stage").value, status = document.getElementById("status").value;
    var shown = 0;
    groups.forEach(function (g) {{
      var tr = g[0], all = g.map(function (t) {{ return t.textContent; }}).join(" ").toLowerCase();
      var ok = (!text || all.indexOf(text) >= 0) && (!stage || tr.dataset.stage === stage)
               && (!status || tr.dataset.status === status);
      g.forEach(function (t) {{ t.style.display = ok ? "" : "none"; }});
      if (ok) shown++;
    }});
    document.getElementById("shown").textContent = shown + " of " + groups.length + " runs shown";
  }}
  ["filter", "stage", "status"].forEach(function (id) {{
    document.getElementById(id).addEventListener("input", filter);
  }});
  filter();
}})();
</script>
</body></html>
"""


def link_report(report: str | os.PathLike, index: str | os.PathLike) -> bool:
    """Put a link to the index at the top of the rendered study report (once; atomic).
    Returns whether the report exists."""
    report, index = Path(report), Path(index)
    if not report.is_file():
        return False
    text = report.read_text(encoding="utf-8")
    if LINK_MARK in text:
        return True
    href = html.escape(os.path.relpath(index, report.parent), quote=True)
    banner = (f'<p class="{LINK_MARK}" style="font: 16px system-ui, sans-serif; margin: 1em 2em; padding: 0.5em 1em; background: #eef4ff;">'
              f'Every run of this study, with its status and rendered notebook: <a href="{href}" style="color: #0645ad; text-decoration: underline;">index of runs</a></p>')
    pos = text.find(">", text.find("<body")) + 1 if "<body" in text else 0
    io.write_text(report, text[:pos] + "\n" + banner + text[pos:])
    return True


def write_index(plan: Any, outputs: str | os.PathLike | None = None, outcomes: list | None = None) -> Path:
    """Write `<outputs>/reports/<study>-index.html` (atomically), and link it from the study
    report when that exists. Returns the index path."""
    index = index_path(plan, outputs)
    report = report_path(plan, outputs)
    rows = collect(plan, outputs, outcomes)
    index.parent.mkdir(parents=True, exist_ok=True)
    io.write_text(index, render(plan, rows, report.name if report.is_file() else None))
    link_report(report, index)
    return index


def update(plan: Any, outputs: str | os.PathLike | None = None, outcomes: list | None = None) -> Path | None:
    """`write_index` for the end of a sweep or study: a failure to write the index is
    printed, never raised, so it cannot turn finished runs into a failed sweep."""
    import sys

    try:
        return write_index(plan, outputs, outcomes)
    except Exception as err:  # noqa: BLE001 - the runs' results matter more than their index
        print(f"[index] could not write the index of runs: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        return None
