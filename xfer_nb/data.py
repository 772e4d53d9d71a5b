"""Intermediate-task data for the size and language-diversity axes, and `xfer-nb data`.

The study needs two properties no loader gives: fixed-size subsets that are *nested*
(for one seed, the 1k subset lies inside the 4k subset, so a size curve measures size
and not resampling) and a fixed budget *spread evenly over a language set* (so a more
diverse set has the same amount of data). For tasks whose rows are translations of each
other (same `id` across languages), each language gets *different* source items, so
adding a language adds new content rather than a translation of what is already there.
"""
from __future__ import annotations

import textwrap

import numpy as np

from xfer_nb import tasks
from xfer_nb.tasks import MULTIPLE_CHOICE, PAIR, QA, RETRIEVAL, TAGGING


def _check_int(name: str, value, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


def nested_subset(pool_size: int, size: int, seed: int, task: str = "") -> list[int]:
    """`size` distinct indices into a pool of `pool_size`, deterministic for `seed`.

    The indices are the first `size` of one seeded permutation of the pool, so for a
    fixed seed and pool the size-N subset is a prefix of the size-M subset (N < M)."""
    pool_size = _check_int("pool_size", pool_size)
    size = _check_int("size", size)
    seed = _check_int("seed", seed)
    if size > pool_size:
        where = f" of task={task!r}" if task else ""
        raise ValueError(f"size={size} is larger than the pool{where}: pool_size={pool_size}; "
                         f"choose size <= {pool_size}")
    return np.random.default_rng(seed).permutation(pool_size)[:size].tolist()


def even_split(size: int, n_languages: int) -> list[int]:
    """`size` spread over `n_languages`: equal shares, the remainder one each to the
    first languages in the order given (10 over 3 -> [4, 3, 3])."""
    size = _check_int("size", size)
    n_languages = _check_int("n_languages", n_languages, 1)
    base, extra = divmod(size, n_languages)
    return [base + (1 if i < extra else 0) for i in range(n_languages)]


def _check_languages(languages) -> list[str]:
    if isinstance(languages, str) or not languages:
        raise ValueError(f"languages={languages!r} must be a non-empty list of language codes, e.g. ['en', 'sw']")
    languages = [str(l) for l in languages]
    duplicates = sorted({l for l in languages if languages.count(l) > 1})
    if duplicates:
        raise ValueError(f"languages={languages!r} repeats {', '.join(duplicates)}; give each language once")
    return languages


def _orders(task, languages, seed, source, data_dir, split):
    """Per language, the full draw order of its row indices (a subset is a prefix).

    Parallel tasks: the union of item ids across the languages is permuted once with the
    seed and dealt round-robin to the languages in the order given (item 0 -> first
    language, item 1 -> second, ...); each language keeps the items it has. The deal does
    not depend on the size, so subsets stay nested and languages never share an item.
    Other tasks: one seeded permutation of each language's own rows."""
    spec = tasks.get(task)
    tasks._check_source(task, source)
    languages = [tasks.canonical_language(task, l) for l in _check_languages(languages)]
    seed = _check_int("seed", seed)
    if split is None:
        split = spec.intermediate_split.get(source)
        if split is None:
            raise ValueError(f"task={task!r} has no intermediate-training split on source={source!r}; "
                             f"intermediate tasks: {', '.join(tasks.INTERMEDIATE_TASKS)}")
    data = {l: tasks.partition(task, split, source, tasks.load(task, l, split, source, data_dir), "pool")
            for l in languages}
    if tasks.is_parallel(task, source):
        positions = {}
        for lang, ds in data.items():
            ids = ds.with_format("arrow")["id"].to_pylist()   # one arrow read, not a Python row loop
            positions[lang] = {item: i for i, item in enumerate(ids)}
            if len(positions[lang]) != len(ids):
                raise ValueError(f"task={task!r} split={split!r} language={lang!r} repeats item ids; "
                                 "cannot align its rows across languages")
        keys = sorted(set().union(*positions.values()))
        dealt = [keys[i] for i in np.random.default_rng(seed).permutation(len(keys))]
        k = len(languages)
        orders = {lang: [positions[lang][key] for key in dealt[j::k] if key in positions[lang]]
                  for j, lang in enumerate(languages)}
    else:
        orders = {lang: nested_subset(len(ds), len(ds), seed, task) for lang, ds in data.items()}
    return split, data, orders


def _largest_size(caps: list[int]) -> int:
    """Largest total whose even split fits every language's capacity: language j (0-based)
    of k takes ceil-or-floor shares, so it caps the total at caps[j] * k + j."""
    k = len(caps)
    return min(cap * k + j for j, cap in enumerate(caps))


def intermediate_pool_size(task: str, languages, source: str = "local", data_dir=None,
                           split: str | None = None, seed: int = 0, held_out: int = 0) -> int:
    """The largest `size` `sample_intermediate` accepts for this task and language set, with
    `held_out` validation rows reserved (for parallel tasks it can depend slightly on the
    seed when languages miss items)."""
    _, _, orders = _orders(task, languages, seed, source, data_dir, split)
    reserved = even_split(_check_int("held_out", held_out), len(orders))
    return max(0, _largest_size([len(o) - r for o, r in zip(orders.values(), reserved)]))


def sample_intermediate(task: str, languages, size: int, seed: int, source: str = "local",
                        data_dir=None, split: str | None = None, held_out: int = 0):
    """`size` labelled examples of `task` spread evenly over `languages` (remainder to the
    first languages in the order given), deterministic for `seed`, nested across sizes
    for the same seed and language set, rows grouped by language in that order.

    Parallel tasks (xnli, mnli, pawsx, xquad, mlqa, xcopa, americasnli, myxnli) draw
    different source items for each language. `split` defaults to the task's intermediate split.
    `held_out` rows (see :func:`sample_validation`) are reserved at the end of each
    language's draw order and never enter a subset of any size."""
    size = _check_int("size", size)
    held_out = _check_int("held_out", held_out)
    split, data, orders = _orders(task, languages, seed, source, data_dir, split)
    langs = list(data)
    quotas = even_split(size, len(langs))
    reserved = even_split(held_out, len(langs))
    caps = [len(orders[l]) - r for l, r in zip(langs, reserved)]
    if any(q > c for q, c in zip(quotas, caps)):
        per = ", ".join(f"{l}={c}" for l, c in zip(langs, caps))
        raise ValueError(
            f"size={size} is larger than the pool of task={task!r} split={split!r} languages={langs}: at most "
            f"{_largest_size(caps)} examples fit an even split (items per language: {per})")
    if size == 0:
        from xfer_nb.tasks.schema import make_dataset
        return make_dataset(tasks.TASKS[task].family, [])
    import datasets
    return datasets.concatenate_datasets([data[l].select(orders[l][:q]) for l, q in zip(langs, quotas)])


def sample_validation(task: str, languages, n: int, seed: int, source: str = "local", data_dir=None,
                      split: str | None = None):
    """`n` held-out examples of the intermediate pool, spread evenly over `languages`: the
    LAST items of each language's draw order for `seed`. The nested subsets are prefixes of
    the same orders, so these rows are disjoint from the training subset of every size (as
    long as `sample_intermediate(..., held_out=n)` reserves them). An intermediate model is
    scored on them to tell whether it learned its task."""
    n = _check_int("n", n, 1)
    split, data, orders = _orders(task, languages, seed, source, data_dir, split)
    langs = list(data)
    quotas = even_split(n, len(langs))
    short = [f"{l}={len(orders[l])}" for l, q in zip(langs, quotas) if q >= len(orders[l])]
    if short:
        raise ValueError(f"validation_examples={n} leaves no training data for task={task!r} split={split!r}: "
                         f"items per language {', '.join(short)}; use a smaller validation_examples")
    import datasets
    return datasets.concatenate_datasets([data[l].select(orders[l][len(orders[l]) - q:])
                                          for l, q in zip(langs, quotas) if q])


# ---------------------------------------------------------------- inventory and `xfer-nb data`

_UNITS = {PAIR: "pairs", TAGGING: "sentences", QA: "questions", MULTIPLE_CHOICE: "questions",
          RETRIEVAL: "source sentences"}


def inventory(source: str = "local", data_dir=None) -> list[dict]:
    """One row per task and split: family, labels present, languages and their sizes
    (local: counted from the files; hub: languages from the documented table, no sizes).
    Tasks without data on `source` get one row saying where they are."""
    rows = []
    for name, spec in tasks.TASKS.items():
        base = {"task": name, "family": spec.family}
        if source not in spec.sources:
            rows.append({**base, "split": "-", "labels": "-", "sizes": {},
                         "note": f"{'hub' if source == 'local' else 'local'} only"})
            continue
        if source == "local":
            from xfer_nb.paths import data_dir as resolve
            from xfer_nb.tasks import local
            root = str(resolve(data_dir))
            splits = tasks.available(name, source, data_dir)
            if not splits:
                rows.append({**base, "split": "-", "labels": "-", "sizes": {}, "note": "no local files"})
            for split, langs in splits.items():
                rows.append({**base, "split": split, "labels": "yes" if tasks.has_labels(name, split) else "NO",
                             "sizes": {l: local.count(name, root, split, l) for l in langs}, "note": ""})
        else:
            for split, langs in tasks.available(name, "hub").items():
                rows.append({**base, "split": split, "labels": "yes" if tasks.has_labels(name, split, "hub") else "NO",
                             "sizes": {l: None for l in langs}, "note": ""})
    return rows


def _languages_cell(row: dict) -> str:
    if row["note"]:
        return row["note"]
    sizes = row["sizes"]
    values = set(sizes.values())
    if values == {None}:
        return " ".join(sizes)
    if len(values) == 1 and len(sizes) > 1:
        return f"{' '.join(sizes)} ({values.pop():,} each)"
    return " ".join(f"{l}:{n:,}" for l, n in sizes.items())


def format_inventory(rows: list[dict], width: int = 120) -> str:
    """An aligned text table of `inventory` rows; the languages column wraps."""
    header = ("task", "family", "split", "labels", "langs", "examples", "languages (examples)")
    cells = []
    for r in rows:
        sizes = r["sizes"]
        total = sum(n for n in sizes.values() if n is not None) if sizes and None not in sizes.values() else None
        unit = _UNITS[r["family"]]
        cells.append((r["task"], r["family"], r["split"], r["labels"], str(len(sizes)) if sizes else "-",
                      f"{total:,} {unit}" if total is not None else "-", _languages_cell(r)))
    widths = [max(len(str(c[i])) for c in cells + [header]) for i in range(6)]
    indent = sum(widths) + 2 * 6
    lines = []
    for c in [header] + cells:
        head = "  ".join(str(v).ljust(w) for v, w in zip(c[:6], widths)) + "  "
        wrapped = textwrap.wrap(c[6], max(40, width - indent)) or [""]
        lines.append(head + wrapped[0])
        lines.extend(" " * indent + more for more in wrapped[1:])
    return "\n".join(lines)


def _clip(text: str, n: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def format_example(task: str, row: dict, targets: dict | None = None) -> str:
    """One example, readably: labels by name, gold choice marked, tags beside tokens."""
    spec = tasks.TASKS[task]
    name = (lambda i: spec.label_names[i] if 0 <= i < len(spec.label_names) else "(no label)")
    head = f"[{row['id']}] ({row['language']})"
    if spec.family == PAIR:
        return (f"{head} label={name(row['label'])}\n  sentence1: {_clip(row['sentence1'])}\n"
                f"  sentence2: {_clip(row['sentence2'])}")
    if spec.family == TAGGING:
        return f"{head}\n  " + " ".join(f"{t}/{name(g)}" if g >= 0 else t for t, g in zip(row["tokens"], row["tags"]))
    if spec.family == QA:
        answers = ", ".join(f"{t!r}@{s}" for t, s in zip(row["answers"]["text"], row["answers"]["answer_start"]))
        return (f"{head}\n  question: {_clip(row['question'])}\n  context:  {_clip(row['context'])}\n"
                f"  answers:  {answers or '(none)'}")
    if spec.family == MULTIPLE_CHOICE:
        choices = "\n".join(f"  {'*' if k == row['label'] else ' '} ({name(k)}) {_clip(c, 150)}"
                            for k, c in enumerate(row["choices"]))
        return f"{head}\n  context:  {_clip(row['context'])}\n  question: {_clip(row['question'])}\n{choices}"
    gold = (targets or {}).get(row["gold"], "") if row["gold"] else ""
    return f"{head} {row['side']}: {_clip(row['sentence'])}" + (f"\n  gold {row['gold']}: {_clip(gold)}" if row["gold"] else "")


def cli_data(args) -> int:
    """`xfer-nb data [TASK [LANG [SPLIT]]]`: the inventory, one task's splits, or the
    first `-n` examples of one task/language/split (SPLIT defaults to the eval split, or
    the intermediate pool of a task without one, e.g. local mnli and squad)."""
    source, data_dir = args.source, args.data_dir
    if args.task is None:
        print(f"xfer-nb data ({source}):")
        print(format_inventory(inventory(source, data_dir)))
        return 0
    spec = tasks.get(args.task)
    if args.language is None:
        print(f"{spec.name} ({spec.family}; metrics {', '.join(spec.metrics)}): {spec.description}")
        training = tasks.target_training(spec.name, source) if source in spec.sources else None
        if training:
            print(f"target training ({source}): task={training[0]} language={training[1]} split={training[2]}")
        print(format_inventory([r for r in inventory(source, data_dir) if r["task"] == spec.name]))
        return 0
    tasks._check_source(spec.name, source)
    split = args.split or spec.eval_split.get(source) or spec.intermediate_split.get(source)
    ds = tasks.load(spec.name, args.language, split, source, data_dir, require_labels=False)
    n = _check_int("num_examples", args.num_examples)
    labels = "yes" if tasks.has_labels(spec.name, split, source) else "NO (labels read -1)"
    print(f"{spec.name} {tasks.canonical_language(spec.name, args.language)} {split} ({source}): "
          f"{len(ds):,} rows, {spec.family}, labels {labels}")
    rows = ds.to_list()
    targets = None
    if spec.family == RETRIEVAL:
        targets = {r["id"]: r["sentence"] for r in rows if r["side"] == "target"}
        rows = [r for r in rows if r["side"] == "source"]
    for row in rows[:n]:
        print(format_example(spec.name, row, targets))
    return 0
