"""Run the grid: every run is one papermill execution of its stage notebook.

A run (one `RunSpec`) executes `notebooks/<stage notebook>` with its config injected as
parameters, plus `run_dir` (its own folder) and `upstream_dir` (the one upstream run's
folder, "" if none), into `<outputs>/runs/<stage>/<run-id>/`:

    config.json        written first (config, upstream runs, git commit)
    notebook.ipynb     the executed notebook (saved after every cell)
    notebook.html      the rendered notebook (also for a failed run)
    metrics.jsonl      written by the notebook itself
    DONE.json          written last, with timings; FAILED.json on a failure instead

`sweep` runs a whole plan, stage by stage as dependencies allow: a run starts once its
upstream run is done, a failed run makes its downstream runs "skipped: upstream failed"
while everything else goes on, and finished runs are never started again (a rerun of a
finished sweep starts no kernel). `workers > 1` runs that many notebooks side by side,
each kernel with `cores // workers` threads (OMP_NUM_THREADS / MKL_NUM_THREADS).
`--executor slurm` hands the same runs to Slurm through submitit (`xfer_nb.executors`).

`describe_plan` says what a plan holds, what is done and what the rest should cost.
`study` = `sweep` + the analysis notebook over the whole plan + the report's location.
`lab` starts JupyterLab on the notebooks, on 127.0.0.1 with a token.
"""
from __future__ import annotations

import ast
import contextlib
import json
import math
import multiprocessing
import multiprocessing.context
import os
import shutil
import socket
import statistics
import sys
import time
import types
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from xfer_nb import io
from xfer_nb.paths import REPO_ROOT, outputs_dir
from xfer_nb.runs import (CONFIG, DONE, FAILED, RunConflict, RunSpec, check_identity, is_done, locked,
                          mark_done, mark_failed, slug, write_config)

STAGE_ORDER = ("prepare", "intermediate", "target")
STAGE_NOTEBOOKS = {
    "prepare": "01_prepare_data.ipynb",
    "intermediate": "02_intermediate_training.ipynb",
    "target": "03_target_training.ipynb",
    "analysis": "04_analysis.ipynb",
}
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
KERNEL_NAME = "xfer-nb"
NOTEBOOK = "notebook.ipynb"
HTML = "notebook.html"
KERNEL_START_RETRIES = 1          # a kernel that fails to start is tried once more
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "XFER_NB_THREADS")
SWEEP_KEYS = ("workers", "executor", "slurm")
EXECUTORS = ("local", "slurm", "submitit-local")

# Outcome statuses.
DONE_NOW = "done"            # executed by this sweep
CACHED = "cached"            # already done before: not started again
FAILED_ = "failed"           # the notebook raised, or its kernel could not start (twice)
SKIPPED = "skipped"          # its upstream run failed or is not done
CONFLICT = "conflict"        # folder locked by another sweep, or its config does not match its id
SUBMITTED = "submitted"      # handed to Slurm; see the job id
OK_STATUSES = (DONE_NOW, CACHED, SUBMITTED)
BAD_STATUSES = (FAILED_, SKIPPED, CONFLICT)


@dataclass
class Outcome:
    """What happened to one run in one sweep."""

    stage: str
    run_id: str
    status: str
    run_dir: str
    seconds: float = 0.0
    error: str | None = None
    last_cell: str | None = None     # the cell that raised, as "cell N (In [k]): source"
    cell_index: int | None = None
    attempts: int = 0                # kernel starts used
    job_id: str | None = None        # Slurm / submitit job

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Summary:
    """All outcomes of one sweep, with a printable table."""

    name: str
    outputs: str
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    executor: str = "local"

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def by_status(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    def counts(self) -> dict[str, Counter]:
        out: dict[str, Counter] = {}
        for o in self.outcomes:
            out.setdefault(o.stage, Counter())[o.status] += 1
        return out

    def table(self) -> str:
        cols = [DONE_NOW, CACHED, SUBMITTED, FAILED_, SKIPPED, CONFLICT]
        cols = [c for c in cols if c not in (SUBMITTED,) or self.by_status(SUBMITTED)]
        counts = self.counts()
        stages = [s for s in (*STAGE_ORDER, "analysis") if s in counts] + sorted(set(counts) - set(STAGE_ORDER) - {"analysis"})
        head = f"{'stage':<14}{'runs':>6}" + "".join(f"{c:>11}" for c in cols)
        lines = [f"sweep {self.name!r}: {len(self.outcomes)} runs in {self.seconds:.1f} s "
                 f"({'all ok' if self.ok else f'{len(self.failed)} not ok'}); outputs {self.outputs}", head,
                 "-" * len(head)]
        total: Counter = Counter()
        for stage in stages:
            c = counts[stage]
            total.update(c)
            lines.append(f"{stage:<14}{sum(c.values()):>6}" + "".join(f"{c[k]:>11}" for k in cols))
        lines.append(f"{'total':<14}{sum(total.values()):>6}" + "".join(f"{total[k]:>11}" for k in cols))
        for o in self.failed:
            lines.append(f"\n{o.status.upper()} {o.stage}/{o.run_id}: {o.error}")
            if o.last_cell:
                lines.append(f"  in {o.last_cell.splitlines()[0][:200]}")
            if o.status == FAILED_ and (Path(o.run_dir) / HTML).is_file():
                lines.append(f"  rendered notebook: {Path(o.run_dir) / HTML}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- one run

def fast_jupyter_imports() -> None:
    """Skip the optional `rfc3987_syntax` package in this process.

    nbformat imports jsonschema, whose format checker imports `rfc3987_syntax` if it is
    installed (jupyter-events pulls it in); that builds an Earley parser at import time:
    3.9 s here (no compiled bytecode), more than papermill itself. Nothing a sweep does
    checks the "iri" string format it serves, so the sweep's own processes (the CLI, its
    workers, its Slurm jobs) mark it absent; jsonschema then just skips that one format.
    Does nothing if it is already imported."""
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def notebook_for(stage: str, notebooks_dir: str | os.PathLike | None = None) -> Path:
    """The notebook a stage runs: `<notebooks_dir>/<01_prepare_data.ipynb ...>`."""
    if stage not in STAGE_NOTEBOOKS:
        raise ValueError(f"stage {stage!r} has no notebook; stages: {list(STAGE_NOTEBOOKS)}")
    return Path(notebooks_dir or NOTEBOOKS_DIR).resolve() / STAGE_NOTEBOOKS[stage]


def check_parameters(parameters: dict[str, Any]) -> None:
    """Refuse a value that papermill would not inject as the same Python value.

    Papermill writes parameters as Python literals into the notebook; a tuple, a set or
    any other object becomes its string, which the notebook would silently get."""
    from papermill.translators import PythonTranslator

    for name, value in parameters.items():
        if not name.isidentifier():
            raise ValueError(f"parameter name {name!r} is not a Python identifier")
        if _non_finite(value):
            continue
        source = PythonTranslator.translate(value)
        try:
            back = ast.literal_eval(source)
        except (ValueError, SyntaxError):
            back = _Missing
        if back != value or type(back) is not type(value):
            raise ValueError(f"parameter {name}={value!r} ({type(value).__name__}) would reach the notebook as "
                             f"{source[:200]}; use str, int, float, bool, None, or lists/dicts of them")


class _Missing:
    pass


def _non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _path_for_papermill(path: Path) -> str:
    # papermill formats notebook paths with the parameters (`str.format`): escape braces.
    return str(path).replace("{", "{{").replace("}", "}}")


@contextlib.contextmanager
def _thread_env(threads: int | None) -> Iterator[None]:
    """Set the thread count the kernel inherits (it copies this process's environment)."""
    if not threads:
        yield
        return
    saved = {k: os.environ.get(k) for k in THREAD_ENV}
    os.environ.update({k: str(threads) for k in THREAD_ENV})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _kernel_config():
    from traitlets.config import Config

    # The project kernel declares CurveZMQ support: encrypt the kernel's sockets (also
    # silences ipykernel's "running over TCP without encryption" warning on every run).
    return Config({"KernelManager": {"transport_encryption": "auto"}})


_EXPORTERS: dict[bool, Any] = {}


def render_html(notebook: str | os.PathLike, html: str | os.PathLike, *, hide_code: bool = False) -> None:
    """Render an executed notebook to HTML, written atomically. `hide_code` makes a report:
    markdown and outputs only, so it opens with the text, not with code."""
    import nbformat
    from nbconvert import HTMLExporter

    if hide_code not in _EXPORTERS:
        _EXPORTERS[hide_code] = HTMLExporter(exclude_input=hide_code, exclude_input_prompt=hide_code,
                                             exclude_output_prompt=hide_code,  # no CDN scripts: opens offline
                                             require_js_url="data:text/javascript,", mathjax_url="data:text/javascript,")
    nb = nbformat.read(str(notebook), as_version=4)
    body, _ = _EXPORTERS[hide_code].from_notebook_node(nb)
    io.write_text(html, body)


def _cells_started(notebook: Path) -> bool:
    """Did any cell start executing? (papermill saves the notebook before the first cell)"""
    if not notebook.is_file():
        return False
    try:
        import nbformat
        nb = nbformat.read(str(notebook), as_version=4)
    except Exception:  # a half-written notebook: treat as not started
        return False
    # (on an error papermill marks every cell "completed"; a start time means it ran)
    return any(c.get("metadata", {}).get("papermill", {}).get("start_time") for c in nb.cells)


def _last_started_cell(notebook: Path) -> str | None:
    if not notebook.is_file():
        return None
    try:
        import nbformat
        nb = nbformat.read(str(notebook), as_version=4)
    except Exception:
        return None
    last = None
    for i, cell in enumerate(nb.cells):
        if cell.get("metadata", {}).get("papermill", {}).get("start_time"):
            last = _cell_label(i, cell.get("execution_count"), cell.get("source", ""))
    return last


def _cell_label(index: int, exec_count: Any, source: str) -> str:
    source = source if len(source) <= 600 else source[:600] + " ..."
    return f"cell {index} (In [{exec_count if exec_count is not None else ' '}]): {source}"


def _timings(notebook: Path) -> dict[str, Any]:
    """Kernel start and per-cell times from papermill's metadata."""
    import datetime as dt
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    meta = nb.metadata.get("papermill", {})
    cells = [c.metadata.get("papermill", {}) for c in nb.cells if c.cell_type == "code"]
    out: dict[str, Any] = {"cells_s": [round(c.get("duration") or 0.0, 3) for c in cells]}
    try:
        start = dt.datetime.fromisoformat(meta["start_time"])
        first = dt.datetime.fromisoformat(cells[0]["start_time"])
        out["kernel_start_s"] = round((first - start).total_seconds(), 3)
    except (KeyError, IndexError, TypeError, ValueError):
        pass
    return out


def run_spec(spec: RunSpec, outputs: str | os.PathLike | None = None, *, force: bool = False,
             kernel_name: str = KERNEL_NAME, notebooks_dir: str | os.PathLike | None = None,
             threads: int | None = None, parameters: dict[str, Any] | None = None,
             notebook: str | os.PathLike | None = None, start_timeout: int = 120) -> Outcome:
    """Run one stage of one configuration through papermill, into its run folder.

    Skips a finished run (unless `force`), refuses a folder locked by another sweep or
    whose config.json does not match its id (status "conflict", nothing written), skips
    a run whose upstream run is not done. On a cell error it writes FAILED.json (error and
    cell) and still renders the failed notebook to HTML. A kernel that dies before the
    first cell runs is started once more. Never raises for a run's own failure."""
    outputs = outputs_dir(outputs)
    run_dir = spec.dir(outputs)
    t0 = time.monotonic()

    def outcome(status: str, **kw: Any) -> Outcome:
        return Outcome(spec.stage, spec.run_id, status, str(run_dir), round(time.monotonic() - t0, 3), **kw)

    if not force and is_done(run_dir):
        try:
            check_identity(spec, run_dir)
        except RunConflict as err:
            return outcome(CONFLICT, error=str(err))
        return outcome(CACHED)
    upstream = spec.upstream_dirs(outputs)
    for stage, path in upstream.items():
        if not is_done(path):
            return outcome(SKIPPED, error=f"upstream {stage} run {Path(path).name} is not done")
    if len(upstream) > 1:
        return outcome(FAILED_, error=f"a run takes one upstream run; {spec.run_id} names {sorted(upstream)}")
    nb_path = Path(notebook).resolve() if notebook else notebook_for(spec.stage, notebooks_dir)
    if not nb_path.is_file():
        return outcome(FAILED_, error=f"notebook {nb_path} does not exist")
    values = dict(spec.config if parameters is None else parameters)
    values["run_dir"] = str(run_dir)
    if upstream or spec.stage in ("intermediate", "target"):  # the stages whose notebooks take one
        values["upstream_dir"] = next(iter(upstream.values()), "")
    try:
        check_parameters(values)
    except ValueError as err:
        return outcome(FAILED_, error=str(err))
    try:
        with locked(run_dir):
            if not force and is_done(run_dir):  # finished by another sweep meanwhile
                check_identity(spec, run_dir)
                return outcome(CACHED)
            check_identity(spec, run_dir)
            for name in (DONE, FAILED, NOTEBOOK, HTML):
                (run_dir / name).unlink(missing_ok=True)
            write_config(spec, run_dir)
            with _thread_env(threads):
                result = _execute(spec, run_dir, nb_path, values, kernel_name, start_timeout, threads, t0)
            return outcome(**result)
    except RunConflict as err:
        return outcome(CONFLICT, error=str(err))


def _execute(spec: RunSpec, run_dir: Path, nb_path: Path, values: dict, kernel_name: str,
             start_timeout: int, threads: int | None, t0: float) -> dict[str, Any]:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    out_nb = run_dir / NOTEBOOK
    attempts = 0
    t_exec = time.monotonic()
    while True:
        attempts += 1
        try:
            pm.execute_notebook(_path_for_papermill(nb_path), _path_for_papermill(out_nb), parameters=values,
                                kernel_name=kernel_name, cwd=str(run_dir), progress_bar=False, log_output=False,
                                request_save_on_cell_execute=True, start_timeout=start_timeout,
                                config=_kernel_config())
            break
        except PapermillExecutionError as err:
            cell = _cell_label(err.cell_index, err.exec_count, err.source)
            error = f"{err.ename}: {err.evalue}"
            _render_quietly(out_nb, run_dir)
            mark_failed(run_dir, error, cell)
            return dict(status=FAILED_, error=error, last_cell=cell, cell_index=err.cell_index, attempts=attempts)
        except Exception as err:  # kernel start-up / transport errors; SystemExit (preemption) passes
            if attempts <= KERNEL_START_RETRIES and not _cells_started(out_nb):
                print(f"[sweep] {spec.stage}/{spec.run_id}: kernel failed to start ({type(err).__name__}: {err}); "
                      "trying once more", file=sys.stderr, flush=True)
                out_nb.unlink(missing_ok=True)
                continue
            error = f"{type(err).__name__}: {err}"
            if attempts > 1:
                error += f" (after {attempts} kernel starts)"
            cell = _last_started_cell(out_nb)
            _render_quietly(out_nb, run_dir)
            mark_failed(run_dir, error, cell)
            return dict(status=FAILED_, error=error, last_cell=cell, attempts=attempts)
    execute_s = time.monotonic() - t_exec
    t_render = time.monotonic()
    try:
        render_html(out_nb, run_dir / HTML)
        timings = {"execute_s": round(execute_s, 3), "render_s": round(time.monotonic() - t_render, 3),
                   **_timings(out_nb)}
    except Exception as err:  # the notebook ran, but a run without its rendered notebook is not done
        error = f"the notebook ran but could not be rendered to HTML: {type(err).__name__}: {err}"
        mark_failed(run_dir, error)
        return dict(status=FAILED_, error=error, attempts=attempts)
    seconds = round(time.monotonic() - t0, 3)
    mark_done(run_dir, {"run_id": spec.run_id, "stage": spec.stage, "notebook": str(nb_path), "seconds": seconds,
                        "timings": timings, "kernel_attempts": attempts, "threads": threads,
                        "host": socket.gethostname()})
    return dict(status=DONE_NOW, attempts=attempts)


def _render_quietly(notebook: Path, run_dir: Path) -> None:
    if notebook.is_file():
        try:
            render_html(notebook, run_dir / HTML)
        except Exception as err:  # the failure itself matters more than its rendering
            print(f"[sweep] could not render {notebook}: {err}", file=sys.stderr)


# ----------------------------------------------------------------------------- a sweep

def _specs(plan: Any, only: str | None) -> list[RunSpec]:
    specs = list(plan.all_specs())
    if only is not None:
        if only not in STAGE_ORDER:
            raise ValueError(f"--only {only!r} is not a stage; stages: {list(STAGE_ORDER)}")
        specs = [s for s in specs if s.stage == only]
    return specs


def sweep_settings(plan: Any) -> dict[str, Any]:
    """The params file's `sweep:` section, checked."""
    section = (getattr(plan, "params", None) or {}).get("sweep") or {}
    if not isinstance(section, dict):
        raise ValueError(f"sweep: must be a mapping, got {section!r}")
    unknown = sorted(set(section) - set(SWEEP_KEYS))
    if unknown:
        raise ValueError(f"sweep: unknown key(s) {unknown}; allowed: {list(SWEEP_KEYS)}")
    return section


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    return max(1, cpu_count() // max(1, workers))


class _Progress:
    """Runs done / failed / to do: a tqdm bar on a terminal, else one line per run."""

    def __init__(self, total: int, cached: int, stream=None, enabled: bool | None = None):
        self.stream = stream or sys.stderr
        self.total, self.cached = total, cached
        self.done = self.bad = 0
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar = None
        if enabled is not False and tty and total:
            from tqdm import tqdm
            self.bar = tqdm(total=total, file=self.stream, unit="run", desc="sweep", dynamic_ncols=True)
        self._print(f"[sweep] {total} runs to do, {cached} already done")

    def _print(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def started(self, spec: RunSpec) -> None:
        if self.bar is None:
            self._print(f"[sweep] start   {spec.stage}/{spec.run_id}")

    def finished(self, o: Outcome) -> None:
        if o.ok:
            self.done += 1
        else:
            self.bad += 1
        left = self.total - self.done - self.bad
        note = f" ({o.error})" if o.error else ""
        self._print(f"[sweep] {o.status:<9} {o.stage}/{o.run_id} {o.seconds:.1f}s{note}"
                    f"  [{self.done} done, {self.bad} failed, {left} to do]")
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(done=self.done, failed=self.bad, todo=left)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _init_worker(threads: int, parent: int) -> None:
    """Pool worker: die with the sweep (a killed sweep leaves no notebook running), set
    the kernels' thread count, and import papermill/nbconvert while the pool starts."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
        if os.getppid() != parent:
            os._exit(1)
    os.environ.update({k: str(threads) for k in THREAD_ENV})
    fast_jupyter_imports()
    import nbconvert  # noqa: F401
    import papermill  # noqa: F401


def _run_in_worker(spec: RunSpec, outputs: str, kwargs: dict) -> Outcome:
    return run_spec(spec, outputs, **kwargs)


class _CleanSpawnProcess(multiprocessing.context.SpawnProcess):
    """A spawned worker that does not re-import the caller's __main__ (a script, a
    notebook's kernel, `python -` on stdin): the worker needs only xfer_nb."""

    @staticmethod
    def _Popen(process_obj):
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            return multiprocessing.context.SpawnProcess._Popen(process_obj)
        finally:
            sys.modules["__main__"] = main


class _CleanSpawnContext(multiprocessing.context.SpawnContext):
    Process = _CleanSpawnProcess


class _Pool:
    """N worker processes; a pool broken by a killed worker is replaced for the runs after."""

    def __init__(self, workers: int, threads: int):
        self.workers, self.threads = workers, threads
        self.pool = self._new()

    def _new(self):
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(max_workers=self.workers, mp_context=_CleanSpawnContext(),
                                   initializer=_init_worker, initargs=(self.threads, os.getpid()))

    def submit(self, *args):
        from concurrent.futures.process import BrokenProcessPool

        try:
            return self.pool.submit(_run_in_worker, *args)
        except BrokenProcessPool:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._new()
            return self.pool.submit(_run_in_worker, *args)

    def shutdown(self, **kw):
        self.pool.shutdown(**kw)


class _InlineFuture:
    def __init__(self, fn, *args):
        from concurrent.futures import Future
        self.future: Future = Future()
        try:
            self.future.set_result(fn(*args))
        except BaseException as err:  # noqa: BLE001 - passed on as the future's exception
            if not isinstance(err, Exception):
                raise
            self.future.set_exception(err)


def sweep(plan: Any, outputs: str | os.PathLike | None = None, *, workers: int = 1, executor: str = "local",
          force: bool = False, only: str | None = None, kernel_name: str = KERNEL_NAME,
          notebooks_dir: str | os.PathLike | None = None, threads: int | None = None,
          progress: bool | None = None, stream=None, quiet: bool = False) -> Summary:
    """Run every run of a plan that is not done yet; return (and print) the summary.

    `plan`: a `grid.Plan` (anything with `.name`, `.params` and `.all_specs()` in stage
    order). `workers`: notebooks run side by side (`local`), each kernel with
    `threads` (default cores // workers) threads. `executor`: "local", "slurm" (submit
    job arrays through submitit and return; see `xfer_nb.executors`) or "submitit-local"
    (the Slurm job path run on this machine by submitit's LocalExecutor). `only`: one
    stage; its upstream runs must be done already. `force`: rerun finished runs too."""
    t0 = time.monotonic()
    outputs = outputs_dir(outputs)
    if executor not in EXECUTORS:
        raise ValueError(f"executor={executor!r} is not one of {list(EXECUTORS)}")
    if workers < 1:
        raise ValueError(f"workers={workers} must be >= 1")
    specs = _specs(plan, only)
    summary = Summary(name=getattr(plan, "name", "sweep"), outputs=str(outputs), executor=executor)
    run_kwargs = dict(force=force, kernel_name=kernel_name, notebooks_dir=notebooks_dir)
    if executor != "local":
        from xfer_nb import executors
        summary.outcomes = executors.submit_runs(plan, specs, outputs, cluster="slurm" if executor == "slurm" else "local",
                                                 workers=workers, **run_kwargs)
    else:
        summary.outcomes = _sweep_local(specs, outputs, workers, threads or threads_per_worker(workers), run_kwargs,
                                        progress, stream)
    summary.seconds = round(time.monotonic() - t0, 3)
    from xfer_nb import index_page
    index_page.update(plan, outputs, summary.outcomes)
    if not quiet:
        print(summary.table(), flush=True)
    return summary


def _prepass(specs: list[RunSpec], outputs: Path, force: bool) -> tuple[dict[str, Outcome], list[RunSpec]]:
    """Finished runs (and finished folders that do not match their id) need no worker."""
    outcomes: dict[str, Outcome] = {}
    todo: list[RunSpec] = []
    for spec in specs:
        run_dir = spec.dir(outputs)
        if not force and is_done(run_dir):
            try:
                check_identity(spec, run_dir)
                outcomes[spec.run_id] = Outcome(spec.stage, spec.run_id, CACHED, str(run_dir))
            except RunConflict as err:
                outcomes[spec.run_id] = Outcome(spec.stage, spec.run_id, CONFLICT, str(run_dir), error=str(err))
        else:
            todo.append(spec)
    return outcomes, todo


def _sweep_local(specs: list[RunSpec], outputs: Path, workers: int, threads: int, run_kwargs: dict,
                 progress: bool | None, stream) -> list[Outcome]:
    from concurrent.futures import FIRST_COMPLETED, wait

    outcomes, todo = _prepass(specs, outputs, run_kwargs["force"])
    if not todo:
        return [outcomes[s.run_id] for s in specs]
    in_sweep = {s.run_id for s in todo}
    bar = _Progress(len(todo), len(outcomes), stream, progress)
    pending = list(todo)
    running: dict[Any, RunSpec] = {}
    pool = _Pool(min(workers, len(todo)), threads) if workers > 1 and len(todo) > 1 else None

    def upstream_state(spec: RunSpec) -> tuple[str, str | None]:
        for stage, rid in spec.upstream.items():
            if rid in outcomes:
                o = outcomes[rid]
                if not o.ok:
                    return "skip", f"upstream failed: {stage} run {rid} is {o.status}"
            elif rid in in_sweep:
                return "wait", None
            elif not is_done(outputs / "runs" / stage / rid):
                return "skip", f"upstream {stage} run {rid} is not done (and not part of this sweep)"
        return "ready", None

    def record(o: Outcome) -> None:
        outcomes[o.run_id] = o
        bar.finished(o)

    try:
        while pending or running:
            moved = True
            while moved:
                moved = False
                for spec in list(pending):
                    state, why = upstream_state(spec)
                    if state == "skip":
                        pending.remove(spec)
                        record(Outcome(spec.stage, spec.run_id, SKIPPED, str(spec.dir(outputs)), error=why))
                        moved = True
                    elif state == "ready" and len(running) < workers:
                        pending.remove(spec)
                        bar.started(spec)
                        args = (spec, str(outputs), {**run_kwargs, "threads": threads})
                        fut = _InlineFuture(_run_in_worker, *args).future if pool is None else pool.submit(*args)
                        running[fut] = spec
                        if pool is None:
                            break  # inline: record it before starting the next one
            if not running:
                for spec in pending:  # cannot happen with a consistent plan; never loop forever
                    record(Outcome(spec.stage, spec.run_id, SKIPPED, str(spec.dir(outputs)),
                                   error="its upstream run never became ready"))
                pending.clear()
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                spec = running.pop(fut)
                try:
                    o = fut.result()
                except Exception as err:
                    from concurrent.futures.process import BrokenProcessPool

                    if isinstance(err, BrokenProcessPool):  # a worker was killed (OOM, signal): the pool breaks
                        why = "a worker process died while this run was in flight (e.g. killed for memory); rerun to retry"
                    else:  # e.g. the outputs disk is full
                        why = "the sweep failed around this run's notebook"
                    o = Outcome(spec.stage, spec.run_id, FAILED_, str(spec.dir(outputs)),
                                error=f"{why}: {type(err).__name__}: {err}")
                record(o)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return [outcomes[s.run_id] for s in specs]


# ----------------------------------------------------------------------------- plan

# Planning throughput of xlm-roberta-large on ONE A100 (bf16 autocast, dynamic padding),
# in examples per second: ESTIMATES derived from FLOP counts, NOT measurements. A
# training example costs about 6·N·T FLOPs and an evaluation example 2·N·T (N ≈ 3.0e8
# non-embedding parameters, T = tokens per example: 128 for sentence pairs and tagging,
# 384-token windows for QA, 4 × 128 for multiple choice, ~64 for retrieval sentences), run
# at ~35% of the A100's 312 TFLOP/s bf16 peak. Re-measure on the real cluster (the
# DONE.json timings of the first runs) and replace these numbers.
GPU_THROUGHPUT_ESTIMATES_XLMR_LARGE_A100 = {
    #  kind            train ex/s  eval ex/s
    "sentence-pair": {"train": 400, "eval": 1200},
    "tagging": {"train": 400, "eval": 1200},
    "qa": {"train": 120, "eval": 360},
    "multiple-choice": {"train": 100, "eval": 300},
    "retrieval": {"train": 0, "eval": 2500},
}
FAMILY_KIND = {"pair_classification": "sentence-pair", "tagging": "tagging", "qa": "qa",
               "multiple_choice": "multiple-choice", "retrieval": "retrieval"}


def _kind(task: str) -> str:
    from xfer_nb import tasks
    return FAMILY_KIND[tasks.TASKS[task].family] if task in tasks.TASKS else "sentence-pair"


# Training-set sizes of the hub's intermediate data (train splits; xnli: per language),
# for sizing `intermediate_size: -1` (the full pool) in the GPU estimate.
HUB_INTERMEDIATE_EXAMPLES = {"mnli": 392_702, "xnli": 392_702, "qqp": 363_846, "squad": 87_599,
                             "squad_v2": 130_319, "hellaswag": 39_905, "cosmosqa": 25_262, "commonsenseqa": 9_741,
                             "siqa": 33_410, "anli": 162_865, "udpos": 21_253, "panx": 20_000, "pawsx": 49_401}
# Full English training sets of the XTREME target tasks (Hu et al. 2020) and approximate
# evaluation sizes (examples per language × languages); used only for GPU estimates.
FULL_TRAIN_EXAMPLES = {"xnli": 392_702, "pawsx": 49_401, "udpos": 21_253, "panx": 20_000, "xquad": 87_599,
                       "mlqa": 87_599, "tydiqa": 3_696, "tatoeba": 0, "bucc2018": 0}
EVAL_EXAMPLES = {"xnli": (5_010, 15), "pawsx": (2_000, 7), "udpos": (1_000, 33), "panx": (5_000, 40),
                 "xquad": (1_190, 11), "mlqa": (5_000, 7), "tydiqa": (600, 9), "tatoeba": (2_000, 36),
                 "bucc2018": (800_000, 4)}
DEFAULT_EPOCHS = {"intermediate": 2.0, "target": 3.0}


def _measured(outputs: Path, stage: str) -> list[tuple[dict, float]]:
    """(config, seconds) of every finished run of a stage under `outputs`."""
    rows = []
    for done in sorted((outputs / "runs" / stage).glob(f"*/{DONE}")):
        try:
            seconds = float(json.loads(done.read_text()).get("seconds"))
            config = json.loads((done.parent / CONFIG).read_text()).get("config", {})
        except (OSError, ValueError, TypeError):
            continue
        rows.append((config, seconds))
    return rows


def _cost_key(stage: str, config: dict) -> tuple:
    if stage == "target":
        return (config.get("model_name_or_path"), config.get("target_task"))
    return (config.get("model_name_or_path"),)


def _fmt_s(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _gpu_seconds(spec: RunSpec, prepare: dict[str, RunSpec]) -> float | None:
    """Estimated A100 seconds of one run of the full study (see the table above)."""
    cfg = spec.config
    table = GPU_THROUGHPUT_ESTIMATES_XLMR_LARGE_A100
    if spec.stage == "intermediate":
        prep = prepare.get(spec.upstream.get("prepare", ""))
        if prep is None:
            return None
        tasks = str(prep.config.get("intermediate_task", "")).split("+")
        size = int(prep.config.get("intermediate_size", 0))  # per task; -1: the full pool
        cap = cfg.get("max_train_examples_per_task", -1)
        epochs = float(cfg.get("num_train_epochs", DEFAULT_EPOCHS["intermediate"]))
        seconds = 0.0
        for t in tasks:
            n = HUB_INTERMEDIATE_EXAMPLES.get(t, 0) * (len(prep.config.get("intermediate_languages", [1]))
                                                       if t == "xnli" else 1) if size < 0 else size
            if isinstance(cap, int) and cap > 0:
                n = min(n, cap)
            seconds += n * epochs / (table[_kind(t)]["train"] or 1)
        return seconds
    if spec.stage == "target":
        task = cfg.get("target_task")
        kind = _kind(task)
        if task not in EVAL_EXAMPLES:
            return None
        cap = cfg.get("max_train_examples", -1)
        n_train = FULL_TRAIN_EXAMPLES.get(task, 0)
        if isinstance(cap, int) and cap > 0:
            n_train = min(n_train, cap)
        epochs = float(cfg.get("num_train_epochs", DEFAULT_EPOCHS["target"]))
        per_lang, n_lang = EVAL_EXAMPLES[task]
        n_lang = len(cfg.get("eval_languages") or []) or n_lang
        ecap = cfg.get("max_eval_examples", -1)
        if isinstance(ecap, int) and ecap > 0:
            per_lang = min(per_lang, ecap)
        train_rate = table[kind]["train"]
        train = n_train * epochs / train_rate if train_rate else 0.0
        return train + per_lang * n_lang / table[kind]["eval"]
    return 0.0  # prepare: data selection, no GPU


def describe_plan(plan: Any, outputs: str | os.PathLike | None = None) -> str:
    """Counts per stage, how many are done, and what the rest should cost.

    CPU estimate: for each run to do, the median measured time (DONE.json `seconds`) of
    finished runs of the same stage under `outputs` with the same model (and target task);
    "unknown" while no such run has finished. GPU estimate:
    the whole plan as xlm-roberta-large on one A100, from the documented estimate table
    `GPU_THROUGHPUT_ESTIMATES_XLMR_LARGE_A100` (not a measurement)."""
    outputs = outputs_dir(outputs)
    specs = list(plan.all_specs())
    prepare = {s.run_id: s for s in specs if s.stage == "prepare"}
    lines = [f"plan {getattr(plan, 'name', '?')!r}: {len(specs)} runs; outputs {outputs}",
             f"{'stage':<14}{'runs':>6}{'done':>6}{'to do':>7}  {'estimate for the runs to do (this machine)':<46}"
             f"{'A100 estimate, whole stage':>28}"]
    total_cpu, unknown, total_gpu, gpu_unknown = 0.0, 0, 0.0, 0
    for stage in STAGE_ORDER:
        stage_specs = [s for s in specs if s.stage == stage]
        if not stage_specs:
            continue
        done = [s for s in stage_specs if is_done(s.dir(outputs))]
        todo = [s for s in stage_specs if not is_done(s.dir(outputs))]
        measured = _measured(outputs, stage)
        by_key: dict[tuple, list[float]] = {}
        for config, seconds in measured:
            by_key.setdefault(_cost_key(stage, config), []).append(seconds)
        est, n_unknown = 0.0, 0
        for spec in todo:
            same = by_key.get(_cost_key(stage, spec.config))  # the same model (and task) only
            if same:
                est += statistics.median(same)
            else:
                n_unknown += 1
        total_cpu += est
        unknown += n_unknown
        if not todo:
            cost = "-"
        elif n_unknown == len(todo):
            cost = "unknown (no finished run like these yet)"
        else:
            cost = f"{_fmt_s(est)} from {len(measured)} measured runs"
            if n_unknown:
                cost += f" + {n_unknown} unknown"
        gpu = [_gpu_seconds(s, prepare) for s in stage_specs]
        gpu_known = [g for g in gpu if g is not None]
        total_gpu += sum(gpu_known)
        gpu_unknown += len(gpu) - len(gpu_known)
        gpu_text = f"{_fmt_s(sum(gpu_known))} GPU" + (f" (+{len(gpu) - len(gpu_known)} ?)" if len(gpu_known) < len(gpu) else "")
        lines.append(f"{stage:<14}{len(stage_specs):>6}{len(done):>6}{len(todo):>7}  {cost:<46}{gpu_text:>28}")
    lines.append(f"to do on this machine: {_fmt_s(total_cpu)} of measured time"
                 + (f", plus {unknown} runs with no measurement yet" if unknown else "")
                 + " (sequential; divide by --workers for side-by-side runs, minus contention)")
    lines.append(f"whole plan as xlm-roberta-large on one A100: about {_fmt_s(total_gpu)} of GPU time"
                 + (f" (+{gpu_unknown} runs of unknown task)" if gpu_unknown else "")
                 + "; from GPU_THROUGHPUT_ESTIMATES_XLMR_LARGE_A100 in xfer_nb/sweep.py: FLOP-count estimates,"
                 " to be re-measured")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- study

def analysis_spec(plan: Any, outputs: str | os.PathLike | None = None) -> RunSpec:
    """The analysis run over a plan: its id hashes the plan and the set of finished runs,
    so a report over a partial grid is redone once more runs finish."""
    outputs = outputs_dir(outputs)
    done = sorted(s.run_id for s in plan.all_specs() if is_done(s.dir(outputs)))
    return RunSpec("analysis", {"name": plan.name, "params": plan.params, "runs_done": done}, {}, plan.name)


def run_analysis(plan: Any, params_file: str | os.PathLike, outputs: str | os.PathLike | None = None, *,
                 kernel_name: str = KERNEL_NAME, notebooks_dir: str | os.PathLike | None = None,
                 threads: int | None = None, force: bool = False) -> tuple[Outcome, Path | None]:
    """Run 04_analysis once over the plan into outputs/runs/analysis/<name>-<hash>/ and copy
    its HTML to outputs/reports/<name>.html. Returns the outcome and the report path."""
    outputs = outputs_dir(outputs)
    spec = analysis_spec(plan, outputs)
    parameters = {"outputs_dir": str(outputs), "params_file": str(Path(params_file).resolve())}
    outcome = run_spec(spec, outputs, force=force, kernel_name=kernel_name, notebooks_dir=notebooks_dir,
                       threads=threads or cpu_count(), parameters=parameters)
    executed = Path(outcome.run_dir) / NOTEBOOK
    if not outcome.ok or not executed.is_file():
        return outcome, None
    report = outputs / "reports" / f"{_slug(plan.name)}.html"
    render_html(executed, report, hide_code=True)
    return outcome, report


def _slug(name: str) -> str:
    return slug(name) or "study"


def load_plan(params_file: str | os.PathLike, for_running: bool = True):
    from xfer_nb import grid

    return grid.expand(grid.load_params(params_file), for_running=for_running)


def study(params_file: str | os.PathLike, outputs: str | os.PathLike | None = None, *, workers: int | None = None,
          executor: str | None = None, force: bool = False, kernel_name: str = KERNEL_NAME,
          notebooks_dir: str | os.PathLike | None = None, plan: Any = None) -> tuple[Summary, Path | None]:
    """`sweep` the params file's plan, then the analysis notebook over it; print where the
    report is. With the slurm executor the analysis is a job after all the runs' jobs."""
    plan = plan if plan is not None else load_plan(params_file)
    settings = sweep_settings(plan)
    workers = workers or int(settings.get("workers", 1))
    executor = executor or settings.get("executor", "local")
    t0 = time.monotonic()
    summary = sweep(plan, outputs, workers=workers, executor=executor, force=force, kernel_name=kernel_name,
                    notebooks_dir=notebooks_dir, quiet=True)
    outputs = outputs_dir(outputs)
    if executor == "slurm":
        from xfer_nb import executors
        job = executors.submit_analysis(plan, params_file, outputs, summary, kernel_name=kernel_name,
                                        notebooks_dir=notebooks_dir)
        report = outputs / "reports" / f"{_slug(plan.name)}.html"
        print(summary.table(), flush=True)
        print(f"analysis job {job} will write the report to {report}", flush=True)
        return summary, None
    outcome, report = run_analysis(plan, params_file, outputs, kernel_name=kernel_name, notebooks_dir=notebooks_dir)
    from xfer_nb import index_page
    print(f"index of runs: {index_page.update(plan, outputs, summary.outcomes)}", flush=True)
    summary.outcomes.append(outcome)
    summary.seconds = round(time.monotonic() - t0, 3)
    print(summary.table(), flush=True)
    if report is not None:
        print(f"report: {report}", flush=True)
    else:
        print(f"no report: analysis {outcome.status} ({outcome.error}); see {outcome.run_dir}", flush=True)
    return summary, report


# ----------------------------------------------------------------------------- lab

def lab_command(port: int = 8888, token: str | None = None,
                root: str | os.PathLike | None = None) -> tuple[list[str], dict[str, str], str]:
    """The JupyterLab command line, its environment and its URL: bound to 127.0.0.1,
    with a token (passed in the environment, not on the command line where `ps` shows
    it), the notebooks folder as root. The venv's Python, so the project kernel is there."""
    import secrets

    token = token or secrets.token_urlsafe(24)
    root = Path(root or NOTEBOOKS_DIR).resolve()
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={int(port)}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}",
           "--ServerApp.allow_remote_access=False",
           "--ContentsManager.pre_save_hook=xfer_nb.lab_hooks.strip_outputs"]  # saved notebooks stay output-free
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers run as root; Jupyter refuses without this
        cmd.append("--allow-root")
    env = {**os.environ, "JUPYTER_TOKEN": token}
    return cmd, env, f"http://127.0.0.1:{int(port)}/lab?token={token}"


def lab(port: int = 8888, root: str | os.PathLike | None = None) -> int:
    """Start JupyterLab in the foreground (Ctrl-C stops it)."""
    import subprocess

    cmd, env, url = lab_command(port, root=root)
    print(f"JupyterLab on the notebooks (kernel {KERNEL_NAME!r}): {url}", flush=True)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0
