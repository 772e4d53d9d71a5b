"""The tasks: the table of `tasks.registry` (re-exported here), and `load` / `available`.

Every task is described once, in `TASKS`, by data rather than by code paths: its family
(which fixes the columns, see `schema`), its label names, the metrics XTREME reports for
it, which splits train and evaluate it on each source ("local": the curated files in the
data folder, "hub": the Hugging Face hub), and whether its rows are translations of each
other across languages (`tasks.registry`). Loading goes through `tasks.local` or `tasks.hub`; both return a
`datasets.Dataset` in the family schema, labels as int indices into `label_names`
(-1 where a split has no gold labels).

Split names are the same on both sources: "train", "dev", "test" (the hub's "validation"
is "dev"; a few hub splits keep their own names, e.g. MNLI's "dev_mismatched").
"""
from __future__ import annotations

import functools

from xfer_nb.tasks.registry import (  # noqa: F401 (the registry is this package's API)
    DUPLICATE_LABELS, INTERMEDIATE_TASKS, MULTIPLE_CHOICE, NLI_LABELS, NO_LABEL, PAIR, PANX_LABELS,
    PARAPHRASE_LABELS, QA, RETRIEVAL, SOURCES, TAGGING, TARGET_TASKS, TASKS, UPOS_LABELS, TaskSpec, UnknownTask,
    _check_source, env_offline, get, has_labels)


def is_parallel(task: str, source: str = "local") -> bool:
    """Whether rows of `task` with the same id are translations of each other on `source`
    (TaskSpec.parallel; a hub source may say otherwise, e.g. the hub's AmericasNLI has no
    ids and uneven sizes, so its rows do not align across languages)."""
    spec = get(task)
    if source == "hub":
        from xfer_nb.tasks import hub
        return hub.hub_parallel(task)
    return spec.parallel


def available(task: str, source: str = "local", data_dir=None) -> dict[str, list[str]]:
    """{split: [languages]} of `task`: discovered from the files present (local) or from
    the documented hub table (hub)."""
    _check_source(task, source)
    if source == "hub":
        from xfer_nb.tasks import hub
        return hub.hub_available(task)
    from xfer_nb.tasks import local
    from xfer_nb.paths import data_dir as resolve
    return local.available(task, str(resolve(data_dir)))


def canonical_language(task: str, language: str) -> str:
    """The code `load` uses for `language`: LASER's 3-letter Tatoeba codes map to the
    2-letter ISO 639-1 code where one exists ("swh" -> "sw"); everything else is kept."""
    from xfer_nb.tasks.local import LASER_TO_ISO
    if task == "tatoeba" and isinstance(language, str):
        return LASER_TO_ISO.get(language, language)
    return language


def resolve_split(task: str, language: str, split: str, source: str = "local", data_dir=None) -> tuple[str, str]:
    """Check (`language`, `split`) against what exists; return the canonical pair.

    Errors name the bad value and list what is available."""
    splits = available(task, source, data_dir)
    if not splits:
        from xfer_nb.paths import data_dir as resolve
        raise FileNotFoundError(
            f"task={task!r}: no local files found under data_dir={str(resolve(data_dir))!r}; "
            f"see ../shared/data/SOURCES.md for the expected layout")
    if split not in splits:
        raise ValueError(f"split={split!r} does not exist for task={task!r} ({source}); available splits: "
                         f"{', '.join(f'{s} ({len(ls)} languages)' for s, ls in splits.items())}")
    language = canonical_language(task, language)
    if language not in splits[split]:
        raise ValueError(f"language={language!r} is not available for task={task!r} split={split!r} "
                         f"({source}); available: {', '.join(splits[split])}")
    return language, split


def load(task: str, language: str, split: str, source: str = "local", data_dir=None,
         require_labels: bool = True):
    """Load one task/language/split as a `datasets.Dataset` in the task family's schema.

    With require_labels=True (the default, what evaluation needs) a split without gold
    labels raises a ValueError; pass require_labels=False to read its inputs anyway
    (labels then read -1). Local loads are cached per process."""
    _check_source(task, source)
    if source == "hub":
        if require_labels and not has_labels(task, split, source):
            raise ValueError(_no_labels_message(task, split, source))
        from xfer_nb.tasks import hub
        return hub.load_hub(task, canonical_language(task, language), split)
    language, split = resolve_split(task, language, split, source, data_dir)
    if require_labels and not has_labels(task, split, source):
        raise ValueError(_no_labels_message(task, split, source, data_dir))
    from xfer_nb.paths import data_dir as resolve
    # A fresh Dataset object over the cached Arrow table: a caller's in-place set_format
    # cannot leak into the next caller's copy.
    return _load_local(task, language, split, str(resolve(data_dir))).with_format(None)


@functools.lru_cache(maxsize=None)
def _load_local(task: str, language: str, split: str, root: str):
    from xfer_nb.tasks import local
    from xfer_nb.tasks.schema import make_dataset
    rows = local.read(task, root, split, language)
    with local.gc_paused():
        return make_dataset(TASKS[task].family, rows)


def _no_labels_message(task: str, split: str, source: str, data_dir=None) -> str:
    spec = TASKS[task]
    labelled = [s for s in available(task, source, data_dir) if has_labels(task, s, source)]
    hint = f"; labelled splits: {', '.join(labelled)}" if labelled else ""
    return (f"task={task!r} split={split!r} has no gold labels in the {source} data, so it cannot be "
            f"evaluated{hint} (evaluation split: {spec.eval_split.get(source)!r}). "
            f"Pass require_labels=False to read its inputs anyway.")


def partition(task: str, split: str, source: str, ds, part: str):
    """The rows of `ds` (one language's `split`) that `part` ("pool" or "eval") may use:
    all of them unless the task's intermediate pool and evaluation share this split
    (TaskSpec.shared_split_block); then even blocks are the pool and odd blocks evaluation."""
    spec = get(task)
    block = spec.shared_split_block
    shared = spec.intermediate_split.get(source) == split == spec.eval_split.get(source)
    if not block or not shared:
        return ds
    if part not in ("pool", "eval"):
        raise ValueError(f"part={part!r} is not allowed; use 'pool' or 'eval'")
    parity = 0 if part == "pool" else 1
    return ds.select([i for i in range(len(ds)) if (i // block) % 2 == parity])


def target_training(task: str, source: str = "local") -> tuple[str, str, str] | None:
    """(task, language, split) of the English data that trains `task` in the target
    phase, or None (retrieval tasks, and tasks that are never a target)."""
    spec = _check_source(task, source)
    train_task = spec.train_task.get(source)
    if train_task is None:
        return None
    return train_task, "en", spec.train_split[source]
