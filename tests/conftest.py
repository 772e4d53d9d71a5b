"""Shared fixtures. Tests run offline (HF_HUB_OFFLINE=1) on the real data in ../shared/data."""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def data_dir():
    from xfer_nb.paths import data_dir as resolve
    return resolve()
