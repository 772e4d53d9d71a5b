"""The sweep, end to end through papermill: real kernels, real subprocesses, toy stage
notebooks (tests/notebooks/) that write a metric computed from their parameters."""
from __future__ import annotations

import ast
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from xfer_nb import sweep as S, notebook_runner as R, outcomes as O, estimates as E, study as St, lab as L
from xfer_nb.runs import CONFIG, DONE, FAILED, HTML, METRICS, NOTEBOOK, RunConflict, RunSpec, locked

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "tests" / "notebooks"
sys.path.insert(0, str(NOTEBOOKS))
import toyplan  # noqa: E402

R.fast_jupyter_imports()  # as the xfer-nb command does
pytestmark = pytest.mark.slow

RUN_FILES = (CONFIG, NOTEBOOK, HTML, METRICS, DONE)
TOY = [sys.executable, str(NOTEBOOKS / "toyplan.py")]


def metric(run_dir) -> float:
    return json.loads((Path(run_dir) / METRICS).read_text().splitlines()[0])["value"]


def executions(run_dir) -> int:
    path = Path(run_dir) / "executions.log"
    return len(path.read_text().splitlines()) if path.is_file() else 0


def done_mtimes(outputs: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in outputs.glob(f"runs/*/*/{DONE}")}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The 5-run chain plan swept once with 2 workers (a process pool)."""
    outputs = tmp_path_factory.mktemp("chain")
    plan = toyplan.chain_plan()
    t0 = time.monotonic()
    summary = S.sweep(plan, outputs, workers=2, notebooks_dir=NOTEBOOKS, progress=False)
    return plan, summary, outputs, time.monotonic() - t0


def test_sweep_writes_complete_run_folders(chain):
    plan, summary, outputs, seconds = chain
    assert summary.ok, summary.table()
    assert [o.status for o in summary.outcomes] == [O.DONE_NOW] * 5
    expected = {"p": 1, "i": 11, "t-value": 111, "t-text": 211, "baseline": 1000}  # upstream values add up
    for spec in plan.all_specs():
        run_dir = spec.dir(outputs)
        for name in RUN_FILES:
            assert (run_dir / name).is_file(), (run_dir, name)
        assert not (run_dir / FAILED).exists()
        config = json.loads((run_dir / CONFIG).read_text())
        assert config["config"] == spec.config and config["run_id"] == spec.run_id
        assert config["upstream"] == spec.upstream and config["git_commit"]
        assert metric(run_dir) == expected[spec.label]
        row = json.loads((run_dir / METRICS).read_text())
        assert row["omp_num_threads"] == str(R.threads_per_worker(2))  # the kernel got the thread count
        done = json.loads((run_dir / DONE).read_text())
        assert done["run_id"] == spec.run_id and done["kernel_attempts"] == 1
        # what the numbers depend on besides the config: the CPU's kernels and the libraries
        assert done["machine"]["cpu"] and done["machine"]["packages"]["torch"].startswith("2.13.0"), done["machine"]
        assert done["timings"]["kernel_start_s"] > 0 and done["seconds"] >= done["timings"]["execute_s"]
        html = (run_dir / HTML).read_text()
        assert "<html" in html and f"'value': {expected[spec.label]}" in html
        nb = json.loads((run_dir / NOTEBOOK).read_text())
        injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
        assert len(injected) == 1 and f"run_dir = \"{run_dir}\"" in "".join(injected[0]["source"])
        # DONE.json is written last
        assert (run_dir / DONE).stat().st_mtime_ns >= max((run_dir / n).stat().st_mtime_ns for n in RUN_FILES)
    kernel = [json.loads((s.dir(outputs) / DONE).read_text())["timings"]["kernel_start_s"] for s in plan.all_specs()]
    runs = [json.loads((s.dir(outputs) / DONE).read_text())["seconds"] for s in plan.all_specs()]
    print(f"\n[measured] chain sweep, 5 runs, 2 workers: {seconds:.1f} s; per run: median {statistics.median(runs):.2f} s "
          f"(kernel start {statistics.median(kernel):.2f} s, toy notebook without imports)")


def test_parameter_string_with_code_reaches_the_notebook_verbatim(chain):
    plan, _, outputs, _ = chain
    spec = next(s for s in plan.all_specs() if s.label == "t-text")
    written = (spec.dir(outputs) / "text_repr.txt").read_text(encoding="utf-8")
    assert written == repr(toyplan.NASTY)
    assert ast.literal_eval(written) == toyplan.NASTY
    assert not list(outputs.rglob("PWNED")) and not (ROOT / "PWNED").exists()


def test_parameters_papermill_would_change_are_refused(tmp_path):
    R.check_parameters({"a": "x\"\n'''", "b": [1, 2.5, None, True], "c": {"k": ["v"]}, "d": float("nan")})
    for bad in ((1, 2), {1, 2}, object(), b"bytes"):
        with pytest.raises(ValueError, match="would reach the notebook as"):
            R.check_parameters({"x": bad})
    spec = RunSpec("target", {"value": (1, 2)}, {}, "tuple")
    outcome = R.run_spec(spec, tmp_path, notebooks_dir=NOTEBOOKS)
    assert outcome.status == O.FAILED_ and "would reach the notebook" in outcome.error
    assert not spec.dir(tmp_path).exists()  # refused before any folder or kernel


def test_rerun_of_a_finished_sweep_starts_no_kernel(chain):
    plan, _, outputs, _ = chain
    before = done_mtimes(outputs)
    t0 = time.monotonic()
    proc = subprocess.run([*TOY, "chain", str(outputs), "--workers", "2"], capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert "runs in" in proc.stdout and "cached" in proc.stdout
    t0 = time.monotonic()
    summary = S.sweep(plan, outputs, workers=2, notebooks_dir=NOTEBOOKS, quiet=True)
    inline = time.monotonic() - t0
    assert [o.status for o in summary.outcomes] == [O.CACHED] * 5
    assert done_mtimes(outputs) == before
    assert all(executions(s.dir(outputs)) == 1 for s in plan.all_specs())
    print(f"\n[measured] rerun of the finished 5-run sweep: {wall:.2f} s as a new process, "
          f"{inline * 1000:.0f} ms in-process")
    assert wall < 3.0


def test_failures_are_reported_with_cell_and_html_and_the_rest_finishes(tmp_path):
    plan = toyplan.failing_plan()
    summary = S.sweep(plan, tmp_path, workers=1, notebooks_dir=NOTEBOOKS, progress=False)
    status = {o.run_id.rsplit("-", 1)[0]: o for o in summary.outcomes}
    assert {k: o.status for k, o in status.items()} == {
        "p": "done", "good": "done", "bad": "failed", "ok": "done", "broken": "failed", "after-bad": "skipped"}
    assert not summary.ok and len(summary.failed) == 3
    for name in ("bad", "broken"):
        o = status[name]
        assert o.error == f"ValueError: deliberate failure in {o.run_id}"
        assert "raise ValueError" in o.last_cell and o.last_cell.startswith(f"cell {o.cell_index} ")
        run_dir = Path(o.run_dir)
        failed = json.loads((run_dir / FAILED).read_text())
        assert failed["error"] == o.error and failed["last_cell"] == o.last_cell
        assert not (run_dir / DONE).exists() and (run_dir / CONFIG).is_file()
        assert "deliberate failure" in (run_dir / HTML).read_text()  # the failed notebook, rendered
    assert status["after-bad"].error.startswith("upstream failed: intermediate run bad-")
    assert not Path(status["after-bad"].run_dir).exists()  # never started
    assert metric(status["ok"].run_dir) == 322
    table = summary.table()
    assert "FAILED target/broken-" in table and "notebook.html" in table and "SKIPPED target/after-bad-" in table


def test_cli_study_exits_nonzero_on_failure_and_writes_the_report(tmp_path):
    """The real `xfer-nb` command on a params file (grid + validation), over the toy notebooks."""
    params = tmp_path / "tiny.yaml"
    params.write_text("name: tiny\naxes:\n  intermediate_task: [xnli]\n  intermediate_size: [16]\n"
                      "  target_task: [pawsx]\n  seed: [0, 13]\n"
                      "target:\n  max_train_examples: 16\n  eval_languages: {pawsx: [en, de]}\n"
                      "sweep:\n  workers: 1\n")
    outputs = tmp_path / "out"
    cli = [sys.executable, "-m", "xfer_nb.cli"]
    proc = subprocess.run([*cli, "study", str(params), "--outputs", str(outputs), "--notebooks", str(NOTEBOOKS)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "ValueError: deliberate failure" in proc.stdout  # seed 13 is unlucky
    report = outputs / "reports" / "tiny.html"
    assert f"report: {report}" in proc.stdout
    assert "ANALYSIS OF 1 TARGET RUNS" in report.read_text()
    counts = {x.split()[0]: x.split()[1:] for x in proc.stdout.splitlines() if x.split()[:1] in
              (["prepare"], ["intermediate"], ["target"], ["analysis"])}
    # runs done cached failed skipped conflict
    assert counts == {"prepare": ["2", "1", "0", "1", "0", "0"], "intermediate": ["2", "1", "0", "0", "1", "0"],
                      "target": ["2", "1", "0", "0", "1", "0"], "analysis": ["1", "1", "0", "0", "0", "0"]}
    proc = subprocess.run([*cli, "plan", str(params), "--outputs", str(outputs)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    row = next(x for x in proc.stdout.splitlines() if x.startswith("target"))
    assert row.split()[:4] == ["target", "2", "1", "1"] and "measured" in row


def test_only_one_stage_needs_its_upstream_done(tmp_path):
    plan = toyplan.chain_plan()
    summary = S.sweep(plan, tmp_path, only="intermediate", notebooks_dir=NOTEBOOKS, quiet=True)
    (o,) = summary.outcomes
    assert o.stage == "intermediate" and o.status == O.SKIPPED and "not part of this sweep" in o.error
    assert not (tmp_path / "runs").exists()  # no folder, no kernel
    with pytest.raises(ValueError, match="not a stage"):
        S.sweep(plan, tmp_path, only="train")


def _lock_held(run_dir: Path) -> bool:
    try:
        with locked(run_dir):
            return False
    except RunConflict:
        return True


def test_killed_sweep_resumes_without_redoing_finished_runs(tmp_path):
    plan = toyplan.chain_plan(sleep_s=1.0)
    proc = subprocess.Popen([*TOY, "chain", str(tmp_path), "--workers", "2", "--sleep", "1.0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(f"runs/*/*/{DONE}")):
        assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended before any run finished"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = done_mtimes(tmp_path)
    assert 1 <= len(finished) < 5
    # its pool workers die with it (PR_SET_PDEATHSIG) and so release their run folders' locks
    deadline = time.monotonic() + 10
    while any(_lock_held(p.parent) for p in tmp_path.glob("runs/*/*/.lock")):
        assert time.monotonic() < deadline, "a killed sweep's worker still holds a run folder"
        time.sleep(0.05)
    summary = S.sweep(plan, tmp_path, workers=1, notebooks_dir=NOTEBOOKS, progress=False)
    assert summary.ok, summary.table()  # no conflict: the killed sweep's workers left no lock behind
    by_id = {o.run_id: o.status for o in summary.outcomes}
    assert all(by_id[rid] == O.CACHED for rid in finished)
    after = done_mtimes(tmp_path)
    assert {rid: after[rid] for rid in finished} == finished
    for spec in plan.all_specs():
        assert all((spec.dir(tmp_path) / n).is_file() for n in RUN_FILES)
        if spec.run_id in finished:
            assert executions(spec.dir(tmp_path)) == 1
    assert metric(next(s for s in plan.all_specs() if s.label == "t-value").dir(tmp_path)) == 111


def test_two_sweeps_on_the_same_outputs_never_run_a_run_twice(tmp_path):
    plan = toyplan.flat_plan(4, sleep_s=1.5)
    cmd = [*TOY, "flat", str(tmp_path), "--sleep", "1.5"]
    a = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    b = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out_a, out_b = a.communicate(timeout=300)[0], b.communicate(timeout=300)[0]
    for rc, out in ((a.returncode, out_a), (b.returncode, out_b)):
        assert rc == 0 or ("conflict" in out and "being run by another sweep" in out), out
    assert "being run by another sweep" in out_a + out_b  # they did overlap
    for spec in plan.all_specs():
        assert executions(spec.dir(tmp_path)) == 1, spec.run_id
        assert (spec.dir(tmp_path) / DONE).is_file()
    summary = S.sweep(plan, tmp_path, notebooks_dir=NOTEBOOKS, quiet=True)
    assert [o.status for o in summary.outcomes] == [O.CACHED] * 4


def test_locked_or_foreign_run_folders_are_refused_untouched(tmp_path):
    plan = toyplan.chain_plan()
    inter = plan.stages["intermediate"][0]
    with locked(inter.dir(tmp_path)):
        summary = S.sweep(plan, tmp_path, notebooks_dir=NOTEBOOKS, progress=False, quiet=True)
    status = {o.run_id: o for o in summary.outcomes}
    assert status[inter.run_id].status == O.CONFLICT and "another sweep" in status[inter.run_id].error
    assert sorted(p.name for p in inter.dir(tmp_path).iterdir()) == [".lock"]
    assert [o.status for o in summary.outcomes if o.stage == "target"][:2] == [O.SKIPPED, O.SKIPPED]
    assert status[plan.stages["prepare"][0].run_id].status == O.DONE_NOW
    # a folder whose config.json is not the config its id stands for: reported, never reused
    (inter.dir(tmp_path) / CONFIG).write_text(json.dumps({"stage": "intermediate", "config": {"value": 99},
                                                          "upstream": inter.upstream}))
    (inter.dir(tmp_path) / DONE).write_text("{}")
    outcome = R.run_spec(inter, tmp_path, notebooks_dir=NOTEBOOKS)
    assert outcome.status == O.CONFLICT and "does not match its id" in outcome.error
    summary = S.sweep(plan, tmp_path, notebooks_dir=NOTEBOOKS, quiet=True)
    assert {o.run_id: o.status for o in summary.outcomes}[inter.run_id] == O.CONFLICT
    assert json.loads((inter.dir(tmp_path) / CONFIG).read_text())["config"] == {"value": 99}
    assert not (inter.dir(tmp_path) / NOTEBOOK).exists()


def test_kernel_that_dies_at_start_is_retried_once(tmp_path, monkeypatch):
    kernels = tmp_path / "jupyter" / "kernels"
    counter = tmp_path / "starts"
    script = tmp_path / "flaky.py"
    script.write_text("import os, sys\n"
                      "conn, counter, fail = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
                      "n = int(open(counter).read()) if os.path.exists(counter) else 0\n"
                      "open(counter, 'w').write(str(n + 1))\n"
                      "if n < fail:\n    sys.exit(3)\n"
                      "os.execv(sys.executable, [sys.executable, '-m', 'ipykernel_launcher', '-f', conn])\n")
    for name, fail in (("flaky-once", 1), ("flaky-always", 99)):
        (kernels / name).mkdir(parents=True)
        (kernels / name / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, str(script), "{connection_file}", str(counter) + name, str(fail)],
            "display_name": name, "language": "python", "metadata": {"supported_encryption": ["curve"]}}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    once, always = toyplan.flat_plan(2).all_specs()
    o = R.run_spec(once, tmp_path, kernel_name="flaky-once", notebooks_dir=NOTEBOOKS)
    assert o.status == O.DONE_NOW and o.attempts == 2
    assert json.loads((once.dir(tmp_path) / DONE).read_text())["kernel_attempts"] == 2
    assert executions(once.dir(tmp_path)) == 1
    o = R.run_spec(always, tmp_path, kernel_name="flaky-always", notebooks_dir=NOTEBOOKS)
    assert o.status == O.FAILED_ and o.attempts == 2 and "Kernel died" in o.error and "2 kernel starts" in o.error
    assert json.loads((always.dir(tmp_path) / FAILED).read_text())["error"] == o.error
    assert int(Path(str(counter) + "flaky-always").read_text()) == 2


def test_study_runs_the_analysis_once_and_copies_the_report(chain, tmp_path):
    plan, _, outputs, _ = chain
    params = tmp_path / "chain.yaml"
    params.write_text("name: chain\n")
    summary, report = St.study(params, outputs, plan=plan, workers=1, notebooks_dir=NOTEBOOKS)
    analysis = summary.outcomes[-1]
    assert analysis.stage == "analysis" and analysis.status == O.DONE_NOW
    assert report == outputs / "reports" / "chain.html"
    assert "ANALYSIS OF 3 TARGET RUNS" in report.read_text()
    assert Path(analysis.run_dir).parent == outputs / "runs" / "analysis"
    assert json.loads((Path(analysis.run_dir) / CONFIG).read_text())["config"]["runs_done"] == sorted(
        s.run_id for s in plan.all_specs())
    summary, report2 = St.study(params, outputs, plan=plan, workers=1, notebooks_dir=NOTEBOOKS)
    assert [o.status for o in summary.outcomes] == [O.CACHED] * 6 and report2 == report


def test_describe_plan_counts_and_estimates(chain, tmp_path):
    plan, _, outputs, _ = chain
    text = E.describe_plan(plan, outputs)
    rows = {line.split()[0]: line.split()[1:4] for line in text.splitlines()[2:5]}
    assert rows == {"prepare": ["1", "1", "0"], "intermediate": ["1", "1", "0"], "target": ["3", "3", "0"]}
    fresh = E.describe_plan(plan, tmp_path)
    assert "unknown (no finished run like these yet)" in fresh
    # a new target run is estimated from the measured target runs under `outputs`
    bigger = toyplan.chain_plan()
    bigger.add("target", "new", None, value=5)
    text = E.describe_plan(bigger, outputs)
    assert "from 3 measured runs" in next(x for x in text.splitlines() if x.startswith("target"))
    assert "GPU_THROUGHPUT_ESTIMATES_XLMR_LARGE_A100" in text and "re-measured" in text
    # the GPU table: full XNLI training (3 epochs) plus evaluation in 15 languages
    xnli = RunSpec("target", {"target_task": "xnli", "num_train_epochs": 3.0, "max_train_examples": -1,
                              "eval_languages": [], "max_eval_examples": -1}, {}, "x")
    rate = E.GPU_THROUGHPUT_ESTIMATES_XLMR_LARGE_A100["sentence-pair"]
    assert E._gpu_seconds(xnli, {}) == pytest.approx(392_702 * 3 / rate["train"] + 5_010 * 15 / rate["eval"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lab_binds_loopback_with_a_token(tmp_path):
    port = _free_port()
    cmd, env, url = L.lab_command(port, root=NOTEBOOKS)
    token = env["JUPYTER_TOKEN"]
    assert "--ServerApp.ip=127.0.0.1" in cmd and f"--ServerApp.port={port}" in cmd
    assert len(token) >= 24 and not any(token in part for part in cmd)  # not visible in `ps`
    assert url == f"http://127.0.0.1:{port}/lab?token={token}"
    env = {**env, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline, status = time.monotonic() + 90, None
        while status is None:
            assert server.poll() is None, server.stderr.read()
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/api/contents",
                                             headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(req, timeout=5) as r:
                    status, listing = r.status, json.load(r)
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "JupyterLab did not answer"
                time.sleep(0.3)
        assert status == 200 and "03_target_training.ipynb" in {c["name"] for c in listing["content"]}
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=5)
        assert err.value.code == 403
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise():
    import io as _io

    class Terminal(_io.StringIO):
        def isatty(self):
            return True

    outcomes = [O.Outcome("target", f"r{k}", status, "/x", seconds=1.0, error=error)
                for k, (status, error) in enumerate([(O.DONE_NOW, None), (O.FAILED_, "ValueError: boom"),
                                                     (O.SKIPPED, "upstream failed")])]
    for stream, bar in ((Terminal(), True), (_io.StringIO(), False)):
        progress = S._Progress(3, 2, stream=stream)
        for o in outcomes:
            progress.finished(o)
        progress.close()
        text = stream.getvalue()
        assert "3 runs to do, 2 already done" in text
        assert "[1 done, 1 failed, 1 skipped, 0 to do]" in text and "ValueError: boom" in text  # skipped is no failure
        assert ("3/3" in text) == bar  # tqdm's counter only on a terminal


def test_a_killed_worker_fails_its_runs_and_the_sweep_goes_on(tmp_path):
    import threading

    plan = toyplan.flat_plan(3, sleep_s=1.5)
    result = {}
    thread = threading.Thread(target=lambda: result.update(summary=S.sweep(
        plan, tmp_path, workers=2, notebooks_dir=NOTEBOOKS, progress=False, quiet=True)))
    thread.start()
    first = plan.all_specs()[0].dir(tmp_path) / "executions.log"
    deadline = time.monotonic() + 120
    while not (first.is_file() and first.read_text().strip()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    kernel = int(first.read_text().split()[0])
    worker = int(Path(f"/proc/{kernel}/stat").read_text().rsplit(")", 1)[1].split()[1])  # the kernel's parent
    os.kill(worker, signal.SIGKILL)  # as the OOM killer would
    thread.join(timeout=180)
    statuses = [o.status for o in result["summary"].outcomes]
    assert statuses[0] == O.FAILED_ and "worker process died" in result["summary"].outcomes[0].error
    # the sweep went on: every run has an outcome, and any other failure is the same breakage
    # (which runs were in flight when the pool broke depends on timing)
    assert len(statuses) == 3 and set(statuses) <= {O.FAILED_, O.DONE_NOW}
    assert all("worker process died" in o.error for o in result["summary"].outcomes if o.status == O.FAILED_)
    again = S.sweep(plan, tmp_path, workers=1, notebooks_dir=NOTEBOOKS, quiet=True)
    assert again.ok and sum(o.status == O.DONE_NOW for o in again.outcomes) == statuses.count(O.FAILED_)


def test_the_machine_fingerprint_reads_the_cpu_model_and_its_numeric_flags(tmp_path):
    from xfer_nb import machine
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\n"
                       "flags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n\n"
                       "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor\n")
    got = machine.fingerprint.__wrapped__(str(cpuinfo))
    assert got["cpu"] == "Intel(R) Xeon(R) Processor"
    assert got["cpu_flags"] == ["amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2"]
    assert got["packages"]["torch"].startswith("2.13.0") and set(got["packages"]) == set(machine.PACKAGES)
    zen4 = tmp_path / "zen4"
    zen4.write_text("model name\t: AMD EPYC 9R14\nflags\t\t: avx2 avx512f avx512_bf16\n")
    assert machine.fingerprint.__wrapped__(str(zen4))["cpu_flags"] == ["avx512_bf16", "avx512f", "avx2"]
