"""Where things live: the data folder, the outputs folder and the repository root."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The local data folder: the argument, else $XFER_NB_DATA, else ../shared/data."""
    chosen = override or os.environ.get("XFER_NB_DATA") or REPO_ROOT.parent / "shared" / "data"
    path = Path(chosen).expanduser().resolve()
    if not path.is_dir():
        raise FileNotFoundError(
            f"data_dir={str(chosen)!r} is not a folder. Pass data_dir=..., or set XFER_NB_DATA to a folder "
            "in the layout of XTREME's download folder (xtreme/<task>/..., extra/<source>/...)."
        )
    return path


def outputs_dir(override: str | os.PathLike | None = None) -> Path:
    """The outputs folder: the argument, else $XFER_NB_OUTPUTS, else <repo>/outputs."""
    chosen = override or os.environ.get("XFER_NB_OUTPUTS") or REPO_ROOT / "outputs"
    return Path(chosen).expanduser().resolve()


def cache_dir(outputs: str | os.PathLike | None = None) -> Path:
    return outputs_dir(outputs) / "cache"


_CONTROL = {chr(c) for c in range(32)} | {"\x7f"}


def check_name(name: str, *, what: str = "name") -> str:
    """Refuse a string that is not one plain file name: empty, `.` or `..`, holding `/`
    or `\\`, a `..` anywhere, or control characters. Returns it unchanged."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name \
            or ".." in name or any(ch in _CONTROL for ch in name):
        raise ValueError(f"{what}={name!r} is not allowed as a file or folder name: use letters, digits, "
                         "'-', '_', '.', '+' and '=' (no '/', no '..', no control characters)")
    return name


def output_path(outputs: str | os.PathLike | None, *parts: str) -> Path:
    """The one way to name a file under the outputs folder: `<outputs>/<part>/<part>...`.

    Each part must be a plain name (`check_name`), so nothing is ever written outside
    the outputs folder, whatever a params file's `name` or a task or language holds.
    Pass names built from free text through `xfer_nb.runs.slug` first."""
    root = outputs_dir(outputs)
    path = root.joinpath(*(check_name(p, what="output path part") for p in parts))
    if not path.resolve().is_relative_to(root):  # a symlink inside outputs that points out of it
        raise ValueError(f"{path} resolves to {path.resolve()}, outside the outputs folder {root}")
    return path
