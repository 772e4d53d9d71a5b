"""The smoke study end to end through the real notebooks and papermill, on real data:
every stage notebook executes, every run folder holds its rendered notebook and metrics,
the analysis notebook makes the figures and the report, and a second sweep skips everything."""
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
XFER_NB = [sys.executable, "-m", "xfer_nb.cli"]


# the `smoke` fixture (the smoke study, run once per test session) is in conftest.py


def test_every_run_folder_is_complete(smoke):
    out, proc, _, _ = smoke
    runs = {stage: sorted((out / "runs" / stage).iterdir()) for stage in ("prepare", "intermediate", "target", "analysis")}
    assert [len(runs[s]) for s in ("prepare", "intermediate", "target", "analysis")] == [1, 1, 6, 1]
    for stage, folders in runs.items():
        for folder in folders:
            for name in ("config.json", "notebook.ipynb", "notebook.html", "DONE.json"):
                assert (folder / name).is_file(), f"{folder.name} lacks {name}"
            config = json.loads((folder / "config.json").read_text())
            assert config["run_id"] == folder.name and config["git_commit"]
            nb = json.loads((folder / "notebook.ipynb").read_text())
            assert not any(o.get("output_type") == "error" for c in nb["cells"] for o in c.get("outputs", []))
            if stage != "analysis":
                rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
                assert rows and all(r["run_id"] == folder.name for r in rows)
    targets = {json.loads((f / "config.json").read_text())["config"]["target_task"] for f in runs["target"]}
    assert targets == {"pawsx", "udpos", "tatoeba"}


def test_analysis_makes_figures_and_report(smoke):
    out, proc, _, _ = smoke
    assert "report:" in proc.stdout
    report = out / "reports" / "smoke.html"
    html = report.read_text()
    assert "The answer" in html and "finished target runs" in html
    assert html.count("<img") >= 3, "the figures are embedded"
    assert "study = analysis.load" not in html, "the report shows results, not code"
    assert html.index("The answer") < html.index("Gain over the baseline"), "it leads with the answer"
    figures = sorted(p.name for p in (out / "figures" / "smoke").iterdir())
    assert "1_gain_by_task.png" in figures and "2_size_curve.svg" in figures
    table = (out / "reports" / "smoke-results.csv").read_text().splitlines()
    assert table[0].count(",") > 10 and len(table) > 10


def test_second_sweep_skips_everything(smoke):
    out, _, env, first = smoke
    started = time.monotonic()
    proc = subprocess.run(XFER_NB + ["sweep", "params/smoke.yaml", "--outputs", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - started
    print(f"finished sweep rerun: {seconds:.1f} s (first run {first:.1f} s)")
    assert proc.returncode == 0, proc.stderr[-2000:]
    # columns: runs, done, cached, failed, ...: all 8 runs cached, none run again
    assert re.search(r"^total\s+8\s+0\s+8\s+0\s", proc.stdout, re.M), proc.stdout
    assert seconds < 20
