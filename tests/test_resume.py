"""A training run SIGKILLed after its first checkpoint and resumed ends exactly like an uninterrupted one.

The run exercises every piece of resumable state at once: two tasks (task-draw generator and
two length-grouped samplers), gradient accumulation, dropout (torch RNG), AdamW moments, the
LR schedule and a pruned vocabulary (with its pending closed-form decay)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
EXTRA_VOCAB = 500
ARGS = dict(learning_rate=2e-3, per_device_train_batch_size=8, gradient_accumulation_steps=2, max_steps=12,
            warmup_ratio=0.2, weight_decay=0.1, logging_steps=1, checkpoint_every_steps=3, save_total_limit=2,
            multitask_sampling="temperature", multitask_temperature=2.0, prune_vocabulary=True, seed=5)


def build_model(vocab_size):
    from xfer_nb.models.heads import MultiTaskModel
    from xfer_nb.tasks.schema import PAIR
    from test_train import tiny_encoder
    return MultiTaskModel(tiny_encoder(vocab_size + EXTRA_VOCAB, seed=3), {"xnli": (PAIR, 3), "pawsx": (PAIR, 2)},
                          seed=3)


def run_training(data: Path, out: Path, *, resume: bool, delay: float = 0.0, **overrides):
    """Load the featurised sets from `data`, train, return (result, model)."""
    import datasets
    from xfer_nb.featurize import collate
    from xfer_nb.train import TrainingArgs, train
    meta = json.loads((data / "meta.json").read_text())
    sets = {t: datasets.load_from_disk(str(data / t)) for t in ("xnli", "pawsx")}

    def slow_collate(rows, pad):
        time.sleep(delay)
        return collate(rows, pad)

    model = build_model(meta["vocab_size"])
    result = train(model, sets, TrainingArgs(**{**ARGS, **overrides}), out, collate_fn=slow_collate,
                   pad_token_id=meta["pad_token_id"], resume=resume, progress=False)
    return result, model


def test_sigkill_after_first_checkpoint_then_resume_equals_uninterrupted(data_dir, tmp_path):
    from xfer_nb import tasks
    from xfer_nb.featurize import featurize
    from xfer_nb.tasks.schema import PAIR
    from test_train import build_tokenizer, xnli_rows

    tok = build_tokenizer(data_dir)
    data = tmp_path / "data"
    featurize(xnli_rows(data_dir, 96), PAIR, tok, max_seq_length=64, cache_dir=False).save_to_disk(str(data / "xnli"))
    featurize(tasks.load("pawsx", "en", "dev", data_dir=data_dir).select(range(48)), PAIR, tok, max_seq_length=64,
              cache_dir=False).save_to_disk(str(data / "pawsx"))
    (data / "meta.json").write_text(json.dumps({"vocab_size": len(tok), "pad_token_id": tok.pad_token_id}))

    # 1. a run in a subprocess, killed with SIGKILL once its first checkpoint exists
    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)])}
    proc = subprocess.Popen([sys.executable, str(Path(__file__)), str(data), str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    first = out / "checkpoints" / "step-3" / "trainer_state.json"
    deadline = time.monotonic() + 80
    while not first.exists():
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert not (out / "done.json").exists()                       # it really died mid-run
    steps = sorted(int(p.name[5:]) for p in (out / "checkpoints").glob("step-*"))
    assert steps and steps[-1] < ARGS["max_steps"]

    # 2. resumed here
    resumed, model_r = run_training(data, out, resume=True)
    assert 3 <= resumed.resumed_from_step < ARGS["max_steps"]

    # 3. an uninterrupted run
    full, model_f = run_training(data, tmp_path / "full", resume=False)

    assert resumed.global_step == full.global_step == ARGS["max_steps"]
    assert [e["loss"] for e in resumed.log_history] == [e["loss"] for e in full.log_history]   # bit for bit
    assert resumed.log_history == full.log_history and len(full.log_history) == ARGS["max_steps"]
    assert resumed.task_counts == full.task_counts and set(full.task_counts.values()) != {0}
    assert resumed.examples_seen == full.examples_seen and resumed.tokens_seen == full.tokens_seen
    sf, sr = model_f.state_dict(), model_r.state_dict()
    assert sf.keys() == sr.keys() and all(torch.equal(sf[k], sr[k]) for k in sf)
    assert sf["encoder.embeddings.word_embeddings.weight"].shape[0] == len(tok) + EXTRA_VOCAB  # restored

    # 4. only the final checkpoint is left; "resuming" a finished run returns the same model
    assert [p.name for p in (out / "checkpoints").iterdir() if not p.name.startswith(".")] == ["step-12"]
    again, model_a = run_training(data, out, resume=True)
    assert again.resumed_from_step == 12 and again.log_history == full.log_history
    assert all(torch.equal(sf[k], v) for k, v in model_a.state_dict().items())

    # 5. a checkpoint from another setup is refused, not silently continued
    import pytest
    with pytest.raises(ValueError, match="different training setup"):
        run_training(data, out, resume=True, learning_rate=1e-3)

    # 6. a crafted checkpoint (a copied outputs folder) runs no code on resume: state.pt is
    #    loaded with weights_only=True, so a pickled call is refused, not executed
    import pickle
    pwned = tmp_path / "PWNED"

    class Crafted:
        def __reduce__(self):
            return (os.system, (f"touch {pwned}",))

    torch.save({"scheduler": Crafted()}, out / "checkpoints" / "step-12" / "state.pt")
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        run_training(data, out, resume=True)
    assert not pwned.exists()


if __name__ == "__main__":   # the subprocess of the test above
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data_arg, out_arg = Path(sys.argv[1]), Path(sys.argv[2])
    res, _ = run_training(data_arg, out_arg, resume=False, delay=0.06)
    (out_arg / "done.json").write_text(json.dumps(res.to_dict()))
