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
