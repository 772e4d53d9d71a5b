"""Shared fixtures. Tests run offline (HF_HUB_OFFLINE=1) on the real data in ../shared/data."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_dir():
    from xfer_nb.paths import data_dir as resolve
    return resolve()


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A real one-node Slurm cluster (munged, slurmctld, slurmd from Debian's slurm-wlm) for
    the session; its daemons are stopped by pid at the end. Skips when it cannot start here."""
    import slurm_cluster as sc

    why = sc.unavailable()
    if why:
        pytest.skip(f"no real Slurm cluster: {why}")
    cluster = sc.SlurmCluster(tmp_path_factory.mktemp("slurm"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """The smoke study (params/smoke.yaml) through `xfer-nb study`, once for the whole session:
    (outputs folder, finished process, environment, seconds)."""
    out = tmp_path_factory.mktemp("smoke-outputs")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "xfer_nb.cli", "study", "params/smoke.yaml", "--outputs", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - started
    print(f"smoke study: {seconds:.1f} s")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc, env, seconds
