"""What bad input gets: one test per promise, readable as a list.

Every case gives a clear error (exit code 2 from the command line, naming the value and
what is allowed) before anything runs, or the correct result; never a raw traceback, a
silent wrong number, or a lost result. Each test checks the exit code or status, the
message, and that nothing was written where it should not be.

Bad data files (truncated TSV, non-UTF-8 data ...) have their own file,
tests/test_bad_input_data.py.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from xfer_nb import cli, evaluate, grid
from xfer_nb.notebook_runner import run_spec
from xfer_nb.outcomes import CACHED, DONE_NOW, FAILED_
from xfer_nb.paths import output_path
from xfer_nb.runs import CONFIG, DONE, METRICS, RunSpec, verify_done
from xfer_nb.sweep import sweep

REPO = Path(__file__).resolve().parent.parent
DEFAULTS = REPO / "params" / "defaults.yaml"
TOY_NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"
sys.path.insert(0, str(TOY_NOTEBOOKS))
import toyplan  # noqa: E402

# A valid params file; each case below breaks one thing in it.
GOOD = f"""extends: {DEFAULTS}
name: tiny
axes:
  target_task: [pawsx]
  seed: [0]
target:
  max_train_examples: 8
  eval_languages: [de]
"""


def xfer_nb(args: list[str], capsys) -> tuple[int, str]:
    """Run the command in this process: (exit code, stderr)."""
    try:
        code = cli.main(args)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    return code, capsys.readouterr().err


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def sweep_params(tmp_path: Path, text: str, capsys, *extra: str) -> tuple[int, str, Path]:
    params = tmp_path / "params.yaml"
    params.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    outputs = tmp_path / "outputs"
    code, err = xfer_nb(["sweep", str(params), "--outputs", str(outputs), *extra], capsys)
    return code, err, outputs


def assert_refused(code: int, err: str, outputs: Path, *phrases: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") <= 2, err   # one clear line, no traceback
    for phrase in phrases:
        assert phrase in err, (phrase, err)
    assert files_under(outputs) == []                              # nothing ran, nothing written


def test_the_good_file_is_accepted(tmp_path):
    """The baseline for the cases below: the same file, unbroken, expands to a plan."""
    (tmp_path / "good.yaml").write_text(GOOD)
    plan = grid.expand(grid.load_params(tmp_path / "good.yaml"), for_running=False)
    assert [s.config["target_task"] for s in plan.stages["target"]] == ["pawsx"]


# ------------------------------------------------------------------ params files

def test_empty_params_file(tmp_path, capsys):
    code, err, out = sweep_params(tmp_path, "", capsys)
    assert_refused(code, err, out, "params.yaml", "is empty")


def test_params_file_of_comments_only(tmp_path, capsys):
    code, err, out = sweep_params(tmp_path, "# nothing here\n\n", capsys)
    assert_refused(code, err, out, "is empty")


def test_yaml_syntax_error_names_line_and_column(tmp_path, capsys):
    code, err, out = sweep_params(tmp_path, GOOD + "target:\n  eval_languages: [de\n", capsys)
    assert_refused(code, err, out, "params.yaml at line", "column", "YAML syntax error")


def test_extends_that_includes_itself(tmp_path, capsys):
    code, err, out = sweep_params(tmp_path, "extends: params.yaml\nname: loop\n", capsys)
    assert_refused(code, err, out, "`extends` includes itself", "params.yaml -> params.yaml")


def test_extends_cycle_through_another_file(tmp_path, capsys):
    (tmp_path / "other.yaml").write_text("extends: params.yaml\n")
    code, err, out = sweep_params(tmp_path, "extends: other.yaml\nname: loop\n", capsys)
    assert_refused(code, err, out, "includes itself", "params.yaml -> other.yaml -> params.yaml")


def test_python_object_tag_is_refused_and_never_built(tmp_path, capsys):
    pwned = tmp_path / "PWNED"
    code, err, out = sweep_params(tmp_path, GOOD + f'description: !!python/object/apply:os.system ["touch {pwned}"]\n',
                                  capsys)
    assert_refused(code, err, out, "line 9", "no tags such as !!python/object")
    assert not pwned.exists()


def test_params_file_that_is_not_utf8(tmp_path, capsys):
    code, err, out = sweep_params(tmp_path, GOOD.encode() + b"description: caf\xe9\n", capsys)
    assert_refused(code, err, out, "not UTF-8")


def test_negative_seed(tmp_path, capsys):
    code, err, out = sweep_params(tmp_path, GOOD.replace("seed: [0]", "seed: [-1]"), capsys)
    assert_refused(code, err, out, "seed=-1 is not allowed", "0 to 4294967295")


def test_workers_zero_on_the_command_line(tmp_path, capsys):
    code, err, out = sweep_params(tmp_path, GOOD, capsys, "--workers", "0")
    assert code == 2 and "--workers 0 is not allowed; use 1 or more" in err
    assert files_under(out) == []


def test_workers_zero_in_the_params_file(tmp_path, capsys):
    code, err, out = sweep_params(tmp_path, GOOD + "sweep:\n  workers: 0\n", capsys)
    assert_refused(code, err, out, "sweep.workers=0 is not allowed")


def test_a_key_twice_in_one_file_with_different_values(tmp_path, capsys):
    text = GOOD + "settings:\n  eval_batch_size: 8\n"
    text = text.replace("target:\n", "target:\n  eval_batch_size: 16\n")
    code, err, out = sweep_params(tmp_path, text, capsys)
    assert_refused(code, err, out, "eval_batch_size is given twice", "settings: eval_batch_size: 8",
                   "target: eval_batch_size: 16")


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", "x\ny", "tab\there"])
def test_a_name_that_would_leave_the_outputs_folder(tmp_path, capsys, name):
    code, err, out = sweep_params(tmp_path, GOOD.replace("name: tiny", f"name: {json.dumps(name)}"), capsys)
    assert_refused(code, err, out, "name=", "is not allowed as a file or folder name")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["params.yaml"]   # nothing beside or above it either


@pytest.mark.parametrize("part", ["../x", "..", "a/b", "", "x\x00", "\x1b[31m"])
def test_output_paths_never_leave_the_outputs_folder(tmp_path, part):
    with pytest.raises(ValueError, match="is not allowed as a file or folder name"):
        output_path(tmp_path / "outputs", "reports", part)
    assert output_path(tmp_path / "outputs", "reports", "study-results.csv") == \
        (tmp_path / "outputs" / "reports" / "study-results.csv").resolve()


def test_analysis_files_go_through_the_output_path_check(tmp_path):
    """Even a Study built by hand with a traversing name writes nothing outside outputs."""
    import pandas as pd

    from xfer_nb.analysis import Study

    study = Study("../../x", pd.DataFrame(), tmp_path / "outputs")
    with pytest.raises(ValueError, match="not allowed as a file or folder name"):
        study.save()
    assert files_under(tmp_path) == []


# ------------------------------------------------------------------ metrics

def test_nan_labels_are_refused():
    with pytest.raises(evaluate.Unscorable, match=r"xnli/sw: cannot score: 1 of 3 references are NaN"):
        evaluate.compute("xnli", "sw", [0, 1, 2], [0, float("nan"), 2])


def test_nan_or_infinite_embeddings_are_refused():
    eng = np.eye(3, dtype=np.float32)
    other = eng.copy()
    other[1, 0], other[2, 2] = np.nan, np.inf
    with pytest.raises(evaluate.Unscorable, match=r"tatoeba/de: .*2 of 3 candidates rows hold NaN or infinite"):
        evaluate.tatoeba_accuracy(eng, other, [0, 1, 2], language="de")


def test_gold_indices_out_of_range_are_refused():
    eng = np.eye(3, dtype=np.float32)
    with pytest.raises(evaluate.Unscorable, match=r"tatoeba/sw: .*2 of 3 gold indices are not row numbers of the 3"):
        evaluate.tatoeba_accuracy(eng, eng, [0, 3, -1], language="sw")


def test_missing_qa_prediction_ids_are_refused():
    refs = {"q1": ["Denver Broncos"], "q2": ["Santa Clara"], "q3": ["gold"]}
    with pytest.raises(evaluate.Unscorable, match=r"xquad/de: cannot score: 2 of 3 questions have no prediction \(ids q2, q3\)"):
        evaluate.compute("xquad", "de", {"q1": "Denver Broncos"}, refs)
    # an explicit None is an unanswered question: scored 0, as the official script does
    assert evaluate.compute("xquad", "de", {"q1": "Denver Broncos", "q2": None, "q3": "gold"},
                            refs)["exact_match"] == pytest.approx(200 / 3)


# ------------------------------------------------------------------ changed data

def _copy_pawsx(to: Path) -> Path:
    shutil.copytree(REPO.parent / "shared" / "data" / "xtreme" / "pawsx", to / "xtreme" / "pawsx")
    for p in (to / "xtreme" / "pawsx").iterdir():
        p.chmod(0o644)
    return to


def _plan(tmp_path: Path, data: Path | None):
    text = GOOD.replace("eval_languages: [de]", "eval_languages: [de]\n  data_dir: " + (str(data) if data else "null"))
    (tmp_path / "p.yaml").write_text(text)
    return grid.expand(grid.load_params(tmp_path / "p.yaml"), for_running=False)


def test_run_ids_follow_the_data_folder_and_the_bytes_it_reads(tmp_path, monkeypatch):
    data = _copy_pawsx(tmp_path / "data")
    first = _plan(tmp_path, data).stages["target"][0]
    assert first.config["data_dir"] == str(data.resolve())                      # recorded, resolved
    assert sorted(first.data["files"]) == ["xtreme/pawsx/dev-de.tsv", "xtreme/pawsx/dev-en.tsv"]
    assert _plan(tmp_path, data).stages["target"][0].run_id == first.run_id    # stable
    # a file the run does not read changes nothing
    with open(data / "xtreme" / "pawsx" / "dev-fr.tsv", "a") as f:
        f.write("x\ty\t1\n")
    assert _plan(tmp_path, data).stages["target"][0].run_id == first.run_id
    # one flipped label in a file it reads: a new id
    path = data / "xtreme" / "pawsx" / "dev-de.tsv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[1] = lines[1][:-2] + ("0" if lines[1][-2] == "1" else "1") + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    changed = _plan(tmp_path, data).stages["target"][0]
    assert changed.run_id != first.run_id
    # the same bytes in another folder (XFER_NB_DATA elsewhere): another id too
    other = _copy_pawsx(tmp_path / "other")
    shutil.copy(path, other / "xtreme" / "pawsx" / "dev-de.tsv")
    monkeypatch.setenv("XFER_NB_DATA", str(other))
    moved = _plan(tmp_path, None).stages["target"][0]
    assert moved.config["data_dir"] == str(other.resolve())
    assert moved.data["fingerprint"] == changed.data["fingerprint"] and moved.run_id != changed.run_id


def test_the_file_hash_cache_never_serves_a_changed_file(tmp_path):
    import hashlib

    from xfer_nb.fingerprint import FileHashes

    data, cache = tmp_path / "f.tsv", tmp_path / "outputs" / "cache" / "file-hashes.json"
    data.write_text("a\tb\t1\n")
    assert FileHashes(cache).sha256(data) == hashlib.sha256(data.read_bytes()).hexdigest()
    hashes = FileHashes(cache)
    hashes.sha256(data)
    hashes.save()
    assert json.loads(cache.read_text())[str(data)][2] == hashlib.sha256(b"a\tb\t1\n").hexdigest()
    data.write_text("a\tb\t0\n")                     # same size, new content (and mtime)
    os.utime(data, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert FileHashes(cache).sha256(data) == hashlib.sha256(b"a\tb\t0\n").hexdigest()


# ------------------------------------------------------------------ broken run folders

@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished toy run (a real papermill execution), copied by each test below."""
    out = tmp_path_factory.mktemp("finished")
    plan = toyplan.flat_plan(1)
    summary = sweep(plan, out, notebooks_dir=TOY_NOTEBOOKS, quiet=True, progress=False)
    assert summary.ok, summary.table()
    return out, plan


def _copy(finished, tmp_path):
    out, plan = finished
    shutil.copytree(out, tmp_path / "out")
    spec = plan.all_specs()[0]
    return tmp_path / "out", plan, spec, spec.dir(tmp_path / "out")


def test_done_json_lists_every_file_with_size_and_hash(finished, tmp_path):
    out, plan, spec, run_dir = _copy(finished, tmp_path)
    files = json.loads((run_dir / DONE).read_text())["files"]
    assert {CONFIG, METRICS, "notebook.ipynb", "notebook.html"} <= set(files)
    assert all(f["size"] == (run_dir / name).stat().st_size and len(f["sha256"]) == 64 for name, f in files.items())
    assert verify_done(run_dir) == []
    assert sweep(plan, out, notebooks_dir=TOY_NOTEBOOKS, quiet=True).outcomes[0].status == CACHED


@pytest.mark.parametrize("damage, reason", [
    (lambda d: (d / METRICS).unlink(), "metrics.jsonl is missing"),
    (lambda d: (d / METRICS).write_text(""), "metrics.jsonl has 0 bytes"),
    (lambda d: (d / METRICS).write_text((d / METRICS).read_text()[:-9] + "\n"), "metrics.jsonl has"),
    (lambda d: (d / CONFIG).unlink(), "config.json is missing"),
    (lambda d: (d / CONFIG).write_text((d / CONFIG).read_text()[:40]), "config.json has"),
    (lambda d: (d / DONE).write_text((d / DONE).read_text()[:30]), "DONE.json is unreadable"),
], ids=["metrics-deleted", "metrics-emptied", "metrics-line-cut", "config-deleted", "config-cut", "done-cut"])
def test_a_broken_finished_run_is_named_and_redone(finished, tmp_path, damage, reason):
    out, plan, spec, run_dir = _copy(finished, tmp_path)
    damage(run_dir)
    summary = sweep(plan, out, notebooks_dir=TOY_NOTEBOOKS, quiet=True, progress=False)
    o = summary.outcomes[0]
    assert o.status == DONE_NOW and reason in o.redone and spec.run_id in o.redone
    assert f"REDONE {spec.stage}/{spec.run_id}" in summary.table()
    assert verify_done(run_dir) == [] and json.loads((run_dir / METRICS).read_text())["value"] == 0
    assert not any((out / "staging").rglob("*"))                 # the replacement was swapped in


def test_a_failed_rerun_keeps_the_finished_result(finished, tmp_path):
    out, plan, spec, run_dir = _copy(finished, tmp_path)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.name != ".lock"}
    failing = tmp_path / "failing.ipynb"
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "xfer-nb", "display_name": "x", "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("run_dir = ''", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("raise RuntimeError('the new attempt failed')")]
    nbformat.write(nb, failing)
    o = run_spec(spec, out, force=True, notebook=failing)
    assert o.status == FAILED_ and "the new attempt failed" in o.error and "previous result" in o.error
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.name != ".lock"} == before
    assert verify_done(run_dir) == []
    # a successful --force swaps the new folder in
    o = run_spec(spec, out, force=True, notebooks_dir=TOY_NOTEBOOKS)
    assert o.status == DONE_NOW and verify_done(run_dir) == [] and o.run_dir == str(run_dir)
    assert (run_dir / "executions.log").read_text().count("\n") == 1   # a fresh folder, not the old one appended to


def test_a_cut_metrics_line_is_an_error_naming_file_and_line(tmp_path):
    from xfer_nb import io

    path = tmp_path / METRICS
    path.write_text('{"metric": "accuracy", "value": 1.0}\n{"metric": "acc')
    with pytest.raises(ValueError, match=r"metrics.jsonl line 2: not valid JSON"):
        io.read_jsonl(path)


# ------------------------------------------------------------------ kills

HEARTBEAT = """import os, pathlib, time
pathlib.Path(run_dir, 'kernel.pid').write_text(str(os.getpid()))
beat = pathlib.Path(run_dir, 'heartbeat.log')
for i in range(600):
    with open(beat, 'a') as f:
        f.write(f'{i}\\n')
    time.sleep(0.05)
"""


def test_killing_a_study_ends_its_kernel(tmp_path):
    """Jupyter starts kernels in their own session; killing the sweep's whole process
    group must still stop the kernel at once, so nothing writes into the run folder."""
    nb_path = tmp_path / "heartbeat.ipynb"
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "xfer-nb", "display_name": "x", "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("run_dir = ''", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(HEARTBEAT)]
    nbformat.write(nb, nb_path)
    spec = RunSpec("target", {"value": 1}, {}, "heartbeat")
    run_dir = spec.dir(tmp_path / "out")
    code = ("import sys; from xfer_nb.runs import RunSpec; from xfer_nb.notebook_runner import run_spec; "
            f"run_spec(RunSpec('target', {{'value': 1}}, {{}}, 'heartbeat'), {str(tmp_path / 'out')!r}, "
            f"notebook={str(nb_path)!r})")
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    beat = run_dir / "heartbeat.log"
    deadline = time.monotonic() + 120
    while not (beat.is_file() and beat.read_text().count("\n") >= 3):
        assert proc.poll() is None and time.monotonic() < deadline, "the kernel never started beating"
        time.sleep(0.05)
    kernel = int((run_dir / "kernel.pid").read_text())
    os.killpg(proc.pid, signal.SIGKILL)          # the whole process group of the study
    proc.wait()
    t_kill = time.monotonic()
    beats_at_kill = beat.read_text().count("\n")
    while _alive(kernel):
        # (without PR_SET_PDEATHSIG ipykernel's parent poller ends it after ~0.3-1 s, 8 more beats here)
        assert time.monotonic() - t_kill < 0.2, "the kernel outlived its killed parent"
        time.sleep(0.01)
    time.sleep(0.5)
    assert beat.read_text().count("\n") <= beats_at_kill + 1   # at most the beat in flight at the kill
    assert not (run_dir / DONE).exists()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"   # a zombie has ended
    except FileNotFoundError:
        return False
