"""Committed notebooks carry no outputs, and their parameters are the package's config fields."""
import json
from pathlib import Path

import papermill as pm
import pytest

from xfer_nb import config as C

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
STAGE_NOTEBOOKS = {
    "01_prepare_data": (C.PrepareConfig, {"run_dir"}),
    "02_intermediate_training": (C.IntermediateConfig, {"run_dir", "upstream_dir"}),
    "03_target_training": (C.TargetConfig, {"run_dir", "upstream_dir"}),
}


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, "a notebook with no code"
    for cell in code:
        assert cell.get("outputs") == [] and cell.get("execution_count") is None, path.name
    assert nb["metadata"]["kernelspec"]["name"] == "xfer-nb"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and code[0] is tagged[0], "exactly one parameters cell, the first code cell"


@pytest.mark.parametrize("stem", sorted(STAGE_NOTEBOOKS))
def test_parameters_match_config_fields(stem):
    cls, plumbing = STAGE_NOTEBOOKS[stem]
    params = pm.inspect_notebook(str(NOTEBOOKS / f"{stem}.ipynb"))
    assert set(params) == set(C.field_names(cls)) | plumbing
    for name, p in params.items():
        assert p["help"], f"{stem}: parameter {name} has no comment"
    # the defaults are a valid config (they run the smoke configuration)
    values = {name: eval(p["default"]) for name, p in params.items() if name not in plumbing}
    C.from_dict(cls, values)
