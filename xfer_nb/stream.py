"""The size axis as one pass over a nested stream, with a short decay branch per size.

Separate runs at sizes N1 < N2 < ... < NK cost N1 + N2 + ... + NK examples. Here the
size-N run is one branch of a shared trunk (Hägele et al. 2024, arXiv 2405.18392):

    stream   the largest subset in an order whose first N rows are exactly the size-N
             subset (the nested draw of `xfer_nb.data`, languages interleaved in turn);
    trunk    warm-up, then a constant learning rate, over the stream;
    branch   at the size-N branch point b(N) (the start of the last `decay_ratio` of N's
             steps, as a separate `wsd` run would have it) the size-N run leaves the trunk
             and decays linearly to 0 over stream rows [b(N), N).

So the branch at size N trains on exactly the size-N subset, once, under the schedule a
separate `wsd` run of size N has; the runs differ only in the order of the rows (the
trunk's early rows are the subset's first rows). Batches are length-grouped (as
`train.BatchSampler`) inside segments cut at every b(N) and N of the axis, so no batch
crosses a branch point and the batches before b(N) are the same for every size.

The trunk is not a run: a run that passes a branch point saves its state there in a
content-addressed store (`TrunkStore`), keyed by the training setup, the initial weights,
the branch points and a hash of the stream rows trained on; a run of another size resumes
from the latest entry at or before its own branch point and goes on from there. The
sweep's cost becomes about b(NK) + the decays: 1.1-1.2x its largest point instead of
1.3-2x. Equality with a run that trains its own trunk is tested (`tests/test_stream.py`).
"""
from __future__ import annotations

import hashlib
import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from xfer_nb.batching import length_grouped


def branch_point(size: int, batch_size: int, decay_ratio: float) -> int:
    """Rows of the stream trained at the constant rate before the size-`size` branch decays:
    the steps a separate `wsd` run of `size` rows spends before its decay (`train.lr_factor`),
    times the batch size."""
    steps = math.ceil(size / batch_size)
    decay = max(1, math.ceil(decay_ratio * steps))
    return min(size, (steps - decay) * batch_size)


def boundaries(sizes: Iterable[int], batch_size: int, decay_ratio: float) -> list[int]:
    """Every branch point and every size, sorted: the stream's segments lie between them."""
    points = set()
    for size in sizes:
        points.update((branch_point(size, batch_size, decay_ratio), size))
    points.discard(0)
    return sorted(points)


def interleave_languages(languages: Sequence[str]) -> np.ndarray:
    """Row order of a prepared subset (rows grouped by language, each group a prefix of that
    language's draw order) that takes the languages in turn, first-listed first. Its first
    N rows are then the size-N subset, whose quotas `data.even_split` gives the first-listed
    languages the remainder."""
    groups: dict[str, list[int]] = {}
    for i, lang in enumerate(languages):
        groups.setdefault(lang, []).append(i)
    order, depth = [], 0
    lists = list(groups.values())
    while len(order) < len(languages):
        order.extend(rows[depth] for rows in lists if depth < len(rows))
        depth += 1
    return np.asarray(order, dtype=np.int64)


def _segment_seed(seed: int, start: int, end: int) -> int:
    return zlib.crc32(f"{seed}:{start}:{end}".encode()) & 0x7FFFFFFF


class StreamSampler:
    """One pass over stream rows [0, n), batch after batch, never crossing a boundary.

    Inside each segment the rows are shuffled with a seed of their own, cut into megabatches
    of `megabatch` batches, each sorted longest first (as `train.BatchSampler`), and the
    segment's batches are shuffled. The state is the position: a restored sampler continues
    exactly where it was."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, cuts: Iterable[int],
                 group_by_length: bool = True, megabatch: int = 50):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        n = len(self.lengths)
        if n == 0:
            raise ValueError("a training set is empty")
        edges = [0] + [c for c in sorted(set(cuts)) if 0 < c < n] + [n]
        self.batches: list[np.ndarray] = []
        self.ends: list[int] = []   # stream row reached after each batch's segment is done
        for start, end in zip(edges, edges[1:]):
            rng = np.random.default_rng(_segment_seed(seed, start, end))
            rows = start + rng.permutation(end - start)
            if group_by_length:
                batches = length_grouped(rows, self.lengths, batch_size, megabatch)
                batches = [batches[k] for k in rng.permutation(len(batches))]
            else:
                batches = [rows[j:j + batch_size] for j in range(0, len(rows), batch_size)]
            self.batches.extend(batches)
        self.position = 0

    def __len__(self) -> int:
        return len(self.batches)

    def steps_before(self, row: int) -> int:
        """Batches that cover stream rows [0, row); `row` must be a segment boundary."""
        covered = 0
        for step, batch in enumerate(self.batches):
            if covered == row:
                return step
            covered += len(batch)
        if covered == row:
            return len(self.batches)
        raise ValueError(f"row {row} is not a segment boundary of this stream")

    def next(self) -> np.ndarray:
        if self.position >= len(self.batches):
            raise RuntimeError(f"the stream has {len(self.batches)} batches, all trained; it is one pass")
        batch = self.batches[self.position]
        self.position += 1
        return batch

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = int(state["position"])


def lr_factor(step: int, warmup_steps: int, decay_start: int, total_steps: int) -> float:
    """The trunk's warm-up then constant rate; from `decay_start` (the branch point) a linear
    decay to 0 at `total_steps`, from whatever rate the trunk had there (a branch smaller than
    the warm-up decays from part-way up it). With the branch point after the warm-up this is
    `train.lr_factor("wsd", ...)` exactly."""
    trunk = min(step, decay_start) / max(1, warmup_steps) if min(step, decay_start) < warmup_steps else 1.0
    if step < decay_start:
        return trunk
    return trunk * max(0.0, (total_steps - step) / max(1, total_steps - decay_start))


@dataclass
class Stream:
    """What `train.train` needs to train one size of the stream: the sizes that branch off
    the same trunk, the store of trunk states, and the stream order of this run's rows.
    `order[i]` is the dataset row at stream position i."""

    sizes: list[int]
    store: Path | None
    order: np.ndarray
    setup: dict = field(default_factory=dict)   # anything else the trunk depends on (model, data identity)

    def check(self, n_rows: int) -> None:
        if n_rows not in self.sizes:
            raise ValueError(f"stream_sizes={self.sizes} does not include this run's size {n_rows}; the grid fills "
                             "stream_sizes from the intermediate_size axis, by hand give every size that shares "
                             "the stream (including this one).")
        if len(self.order) != n_rows or sorted(self.order.tolist()) != list(range(n_rows)):
            raise ValueError(f"the stream order must be a permutation of the {n_rows} training rows")


class TrunkStore:
    """Trunk states, content-addressed: `<root>/<key>/` holds the files of a train()
    checkpoint (written atomically), where the key hashes the setup and the rows trained."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def key(self, setup: dict, rows_digest: str, step: int) -> str:
        blob = json.dumps({"setup": setup, "rows": rows_digest, "step": step}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def path(self, key: str) -> Path:
        return self.root / key


def rows_digests(features, order: np.ndarray, points: Sequence[int], columns: Sequence[str]) -> dict[int, str]:
    """{point: sha256 of the model inputs of stream rows [0, point)}: a trunk state is reused
    only by a run whose rows up to the branch point are the same."""
    digest = hashlib.sha256()
    out, done = {}, 0
    cols = [c for c in columns if c in features.column_names]
    for point in sorted(points):
        if point > len(order):
            break
        if point > done:
            rows = features.select(order[done:point].tolist()).select_columns(cols)
            for col in cols:
                for value in rows[col]:
                    digest.update(np.asarray(value, dtype=np.int64).tobytes())
                    digest.update(b"|")
            done = point
        out[point] = digest.copy().hexdigest()
    return out


def weights_digest(model) -> str:
    """sha256 of a model's initial weights (names and values): the trunk starts from them."""
    import torch
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()


class Trunk:
    """One size run's view of the shared trunk: the steps at which it passes a branch point
    (its own and the smaller sizes'), where their states live, and a lock so that one run
    at a time extends a trunk (the others wait, then resume from what it saved)."""

    def __init__(self, store: TrunkStore | None, setup: dict, step_digests: dict[int, str], branch_step: int,
                 sizes: Sequence[int]):
        self.store, self.setup, self.branch_step = store, setup, branch_step
        self.step_digests = dict(step_digests)
        self.steps = set(step_digests)
        self.sizes = sorted(sizes)
        self.resumed_from: int | None = None
        self.setup_key = hashlib.sha256(json.dumps(setup, sort_keys=True, default=str).encode()).hexdigest()[:20]
        self._lock_file = None

    def path_at(self, step: int) -> Path | None:
        if self.store is None or step not in self.step_digests:
            return None
        return self.store.path(self.store.key(self.setup, self.step_digests[step], step))

    def latest(self) -> Path | None:
        """The saved state at the latest of this run's trunk steps, if any."""
        for step in sorted(self.steps, reverse=True):
            path = self.path_at(step)
            if path is not None and (path / "trainer_state.json").is_file():
                return path
        return None

    def lock(self) -> None:
        if self.store is None or self._lock_file is not None:
            return
        import fcntl
        self.store.root.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.store.root / f"{self.setup_key}.lock", "a+")
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)

    def unlock(self) -> None:
        if self._lock_file is not None:
            import fcntl
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def summary(self) -> dict:
        return {"sizes": self.sizes, "branch_step": self.branch_step,
                "trunk_resumed_from_step": self.resumed_from or 0,
                "store": str(self.store.root) if self.store is not None else None}
