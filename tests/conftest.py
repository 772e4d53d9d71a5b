"""Shared fixtures. Tests run offline (HF_HUB_OFFLINE=1) on the real data in ../shared/data."""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
