"""One run = one papermill execution of its stage notebook, into its run folder.

`run_spec` executes `notebooks/<stage notebook>` with the run's config injected as
parameters, plus `run_dir` (its own folder) and `upstream_dir` (the one upstream run's
folder, "" if none), into `<outputs>/runs/<stage>/<run-id>/` (layout: `xfer_nb.runs`).
It never raises for a run's own failure: it returns an `Outcome`. Also here: the
kernel's thread environment and rendering an executed notebook to HTML.
"""
from __future__ import annotations

import ast
import contextlib
import math
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from xfer_nb import io, learning, machine
from xfer_nb.outcomes import CACHED, CONFLICT, DONE_NOW, FAILED_, SKIPPED, Outcome
from xfer_nb.paths import REPO_ROOT, outputs_dir
from xfer_nb.runs import (FAILED, HTML, NOTEBOOK, RunConflict, RunSpec, check_identity, has_done_marker, is_done,
                          locked, mark_done, mark_failed, verify_done, write_config)

STAGE_NOTEBOOKS = {
    "prepare": "01_prepare_data.ipynb",
    "intermediate": "02_intermediate_training.ipynb",
    "target": "03_target_training.ipynb",
    "analysis": "04_analysis.ipynb",
}
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
KERNEL_NAME = "xfer-nb"
KERNEL_START_RETRIES = 1          # a kernel that fails to start is tried once more
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "XFER_NB_THREADS")


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


def _die_with(parent: int) -> None:
    """In the kernel process, before it runs: get SIGKILL when the process that started
    it dies (PR_SET_PDEATHSIG). Jupyter starts kernels in their own session, so a kill
    of the sweep's process group misses them; without this a kernel orphaned by a killed
    sweep keeps writing into its run folder until its parent poller notices (~1 s)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


_KERNEL_MANAGER: list[type] = []


def kernel_manager_class() -> type:
    """nbclient's AsyncKernelManager, launching kernels that die with their parent (Linux)."""
    if not _KERNEL_MANAGER:
        import functools

        from jupyter_client.manager import AsyncKernelManager

        class KernelDiesWithParent(AsyncKernelManager):
            async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
                if sys.platform.startswith("linux"):
                    kw.setdefault("preexec_fn", functools.partial(_die_with, os.getpid()))
                return await super()._async_launch_kernel(kernel_cmd, **kw)

        _KERNEL_MANAGER.append(KernelDiesWithParent)
    return _KERNEL_MANAGER[0]


_EXPORTERS: dict[bool, Any] = {}


def render_html(notebook: str | os.PathLike, html: str | os.PathLike, *, hide_code: bool = False) -> None:
    """Render an executed notebook to HTML, written atomically. `hide_code` makes a report:
    markdown and outputs only, so it opens with the text, not with code."""
    import nbformat
    from nbconvert import HTMLExporter

    if hide_code not in _EXPORTERS:
        # no CDN scripts: a shared report must open offline with a clean console
        _EXPORTERS[hide_code] = HTMLExporter(exclude_input=hide_code, exclude_input_prompt=hide_code,
                                             exclude_output_prompt=hide_code, require_js_url="data:text/javascript,",
                                             mathjax_url="data:text/javascript,")
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

    Skips a finished, intact run (unless `force`), refuses a folder locked by another
    sweep or whose config.json does not match its id (status "conflict", nothing
    written), skips a run whose upstream run is not done. A finished run that fails its
    DONE.json check is redone, and the outcome says why (`redone`). On a cell error it
    writes FAILED.json (error and cell) and still renders the failed notebook to HTML. A
    kernel that dies before the first cell runs is started once more. Never raises for
    a run's own failure.

    Replacing a finished result (`force`, or a broken one) never deletes it first: the
    new attempt runs in `staging_dir` and is swapped in only when it is done; a failed
    attempt leaves the old folder as it was. An unfinished folder (no DONE.json) is run
    in place, so a killed run resumes from its checkpoint."""
    outputs = outputs_dir(outputs)
    run_dir = spec.dir(outputs)
    t0 = time.monotonic()

    def outcome(status: str, where: Path = run_dir, **kw: Any) -> Outcome:
        return Outcome(spec.stage, spec.run_id, status, str(where), round(time.monotonic() - t0, 3), **kw)

    reused = _reuse(spec, run_dir, force)
    if reused is not None:
        return outcome(reused[0], error=reused[1])
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
            reused = _reuse(spec, run_dir, force)  # finished by another sweep meanwhile?
            if reused is not None:
                return outcome(reused[0], error=reused[1])
            check_identity(spec, run_dir)
            redone = None
            if has_done_marker(run_dir):  # replace a finished result: build the new one beside it
                problems = verify_done(run_dir)
                redone = (f"{spec.stage}/{spec.run_id} was not complete ({'; '.join(problems)}); redone"
                          if problems else None)
                if redone:
                    print(f"[sweep] {redone}", file=sys.stderr, flush=True)
                work_dir = staging_dir(outputs, spec)
                shutil.rmtree(work_dir, ignore_errors=True)
                work_dir.mkdir(parents=True)
            else:
                work_dir = run_dir
                for name in (FAILED, NOTEBOOK, HTML):
                    (run_dir / name).unlink(missing_ok=True)
            values["run_dir"] = str(work_dir)
            write_config(spec, work_dir, outputs)
            with _thread_env(threads):
                result = _execute(spec, work_dir, nb_path, values, kernel_name, start_timeout, threads, t0)
            if work_dir == run_dir:
                return outcome(**result, redone=redone)
            if result["status"] != DONE_NOW:
                result["error"] = (f"{result.get('error')}; the previous result in {run_dir} is kept, the failed "
                                   f"attempt is in {work_dir}")
                return outcome(where=work_dir, **result, redone=redone)
            swap_in(work_dir, run_dir)
            for empty in (work_dir.parent, work_dir.parent.parent):  # staging/<stage>, staging: if now empty
                with contextlib.suppress(OSError):
                    empty.rmdir()
            return outcome(**result, redone=redone)
    except RunConflict as err:
        return outcome(CONFLICT, error=str(err))


def _reuse(spec: RunSpec, run_dir: Path, force: bool) -> tuple[str, str | None] | None:
    """(CACHED, None) for a finished, intact run of this id; (CONFLICT, why) for a folder
    that holds another config; None when the run has to be (re)done."""
    if force or not has_done_marker(run_dir) or verify_done(run_dir):
        return None
    try:
        check_identity(spec, run_dir)
    except RunConflict as err:
        return CONFLICT, str(err)
    return CACHED, None


def staging_dir(outputs: Path, spec: RunSpec) -> Path:
    """Where a replacement of a finished run is built: `<outputs>/staging/<stage>/<run-id>`
    (same filesystem as the run folder, outside `runs/`, so nothing reads it as a result)."""
    return outputs / "staging" / spec.stage / spec.run_id


def swap_in(new: Path, run_dir: Path) -> None:
    """Put the finished folder `new` where `run_dir` is, in one step where Linux allows
    (renameat2 RENAME_EXCHANGE), then delete the old folder."""
    if _exchange(new, run_dir):
        shutil.rmtree(new, ignore_errors=True)  # `new` now holds the old folder
        return
    old = run_dir.with_name(f".{run_dir.name}.old-{os.getpid()}")
    os.rename(run_dir, old)
    os.rename(new, run_dir)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


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
                                config=_kernel_config(), kernel_manager_class=kernel_manager_class())
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
                        "host": socket.gethostname(), "machine": machine.fingerprint(),
                        **learning.done_fields(run_dir)})
    return dict(status=DONE_NOW, attempts=attempts)


def _render_quietly(notebook: Path, run_dir: Path) -> None:
    if notebook.is_file():
        try:
            render_html(notebook, run_dir / HTML)
        except Exception as err:  # the failure itself matters more than its rendering
            print(f"[sweep] could not render {notebook}: {err}", file=sys.stderr)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    return max(1, cpu_count() // max(1, workers))


def reuse_outcomes(specs: list[RunSpec], outputs: Path, force: bool) -> tuple[dict[str, Outcome], list[RunSpec]]:
    """Finished, intact runs (and finished folders that do not match their id) need no
    worker: their outcomes, and the runs left to do (a broken finished run is redone)."""
    outcomes: dict[str, Outcome] = {}
    todo: list[RunSpec] = []
    for spec in specs:
        run_dir = spec.dir(outputs)
        reused = _reuse(spec, run_dir, force)
        if reused is None:
            todo.append(spec)
        else:
            outcomes[spec.run_id] = Outcome(spec.stage, spec.run_id, reused[0], str(run_dir), error=reused[1])
    return outcomes, todo
