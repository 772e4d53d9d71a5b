"""JupyterLab save hook: the notebooks in the repository stay committed without outputs.

`xfer-nb lab` configures `ContentsManager.pre_save_hook` with `strip_outputs`, so saving
a notebook (by hand or by JupyterLab's autosave) after running it writes only its cells'
sources: no outputs, no execution counts, and none of the metadata a kernel or a widget
adds (language_info details, widget state). Running a notebook by hand therefore never
dirties the tracked `.ipynb`; its results live in the run folder it wrote.
"""
from __future__ import annotations

from typing import Any

NOTEBOOK_METADATA_KEPT = ("kernelspec",)


def strip_notebook(nb: Any) -> Any:
    """Drop outputs, execution counts and kernel-added metadata from a notebook (in place)."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        meta = cell.get("metadata", {})
        for key in ("execution", "collapsed", "scrolled", "jupyter"):
            meta.pop(key, None)
    meta = nb.get("metadata", {})
    language = (meta.get("language_info") or {}).get("name")
    for key in [k for k in meta if k not in NOTEBOOK_METADATA_KEPT]:
        del meta[key]
    if language:
        meta["language_info"] = {"name": language}
    return nb


def strip_outputs(model: dict, **kwargs: Any) -> None:
    """`ContentsManager.pre_save_hook`: strip every notebook JupyterLab saves."""
    if model.get("type") == "notebook" and isinstance(model.get("content"), dict):
        strip_notebook(model["content"])
