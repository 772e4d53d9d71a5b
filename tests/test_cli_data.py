"""`xfer-nb data` in a fresh process: the inventory of every task, fast, and examples."""
import os
import subprocess
import sys
import time

from xfer_nb.paths import REPO_ROOT
from xfer_nb.tasks import TASKS


def _run(*args, data_dir=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if data_dir is not None:
        env["XFER_NB_DATA"] = str(data_dir)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "xfer_nb.cli", "data", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    return proc, time.perf_counter() - start


def test_inventory_lists_every_task_in_under_ten_seconds(data_dir):
    proc, seconds = _run(data_dir=data_dir)
    assert proc.returncode == 0, proc.stderr
    assert seconds < 10, f"inventory took {seconds:.1f}s"
    lines = proc.stdout.splitlines()
    assert lines[1].split()[:4] == ["task", "family", "split", "labels"]
    first_words = {line.split()[0] for line in lines[2:] if line[:1].strip()}
    assert set(TASKS) <= first_words
    text = proc.stdout
    assert "37,350 pairs" in text                 # xnli dev, 15 x 2,490
    assert "yo:100" in text and "tl:55" in text   # udpos test sentences
    assert "86,068 source sentences" in text      # LASER Tatoeba
    panx_test = next(l for l in lines if l.startswith("panx") and l.split()[2] == "test")
    assert panx_test.split()[3] == "NO"
    assert "hub only" in next(l for l in lines if l.startswith("qqp"))
    # the larger intermediate pools (../shared/data/SOURCES.md): 23 x 15,001; 87,599; 33,410
    mnli = next(l for l in lines if l.startswith("mnli"))
    assert mnli.split()[4] == "23" and "345,023 pairs" in mnli
    assert "87,599 questions" in next(l for l in lines if l.startswith("squad "))
    siqa_train = next(l for l in lines if l.startswith("siqa") and l.split()[2] == "train")
    assert "33,410 questions" in siqa_train


def test_examples_are_printed_readably(data_dir):
    proc, _ = _run("udpos", "yo", "test", "-n", "2", data_dir=data_dir)
    assert proc.returncode == 0, proc.stderr
    assert "udpos yo test (local): 100 rows" in proc.stdout
    assert "Ní/ADP ìbẹ̀rẹ̀/NOUN" in proc.stdout
    assert proc.stdout.count("[test-0000") == 2
    proc, _ = _run("tatoeba", "swh", "-n", "1", data_dir=data_dir)  # default split, 3-letter alias
    assert "tatoeba sw test" in proc.stdout and "gold en-00000: He brought me coffee." in proc.stdout


def test_bad_input_exits_2_with_the_allowed_values(data_dir):
    proc, _ = _run("xnli", "yo", data_dir=data_dir)
    assert proc.returncode == 2
    assert "language='yo'" in proc.stderr and "available: ar, bg" in proc.stderr


def test_a_pool_without_an_evaluation_split_shows_its_pool(data_dir):
    proc, _ = _run("mnli", "sw", "-n", "1", data_dir=data_dir)
    assert proc.returncode == 0, proc.stderr
    assert "mnli sw train (local): 15,001 rows" in proc.stdout and "[train-00000] (sw) label=neutral" in proc.stdout
