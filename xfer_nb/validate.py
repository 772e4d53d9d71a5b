"""Check a whole plan against the data and the models before any run starts.

The grid already rejected unknown keys and wrong types; here every task, language,
split, size and model name is checked against what exists, so a sweep fails at once
with a message naming the value and what is allowed, and never halfway through.
"""
from __future__ import annotations

from pathlib import Path

from xfer_nb import tasks
from xfer_nb.config import FULL, ConfigError, EMBEDDED_MODEL
from xfer_nb.tasks import schema


def check_plan(plan, for_running: bool = True) -> None:
    """Check every run of `plan`; with for_running=False (planning) skip the checks that
    need the models or the hub's data to be reachable from here."""
    for spec in plan.stages["prepare"]:
        check_prepare(spec.config)
    models = set()
    for spec in plan.stages["intermediate"] + plan.stages["target"]:
        models.add(spec.config["model_name_or_path"])
    for spec in plan.stages["target"]:
        check_target(spec.config)
    if for_running:
        for name in sorted(models):
            check_model(name)


def _fail(where: str, message: str) -> None:
    raise ConfigError(f"{where}: {message}")


def check_prepare(cfg: dict) -> None:
    from xfer_nb import data
    where = f"prepare ({cfg['intermediate_task']}, {cfg['language_set']}, n={cfg['intermediate_size']})"
    source = cfg["data_source"]
    for task in cfg["intermediate_task"].split("+"):
        if task not in tasks.TASKS:
            _fail(where, f"intermediate_task={task!r} is not a known task; intermediate tasks: {list(tasks.INTERMEDIATE_TASKS)}")
        spec = tasks.TASKS[task]
        if spec.family == schema.RETRIEVAL or not spec.intermediate_split.get(source):
            usable = [t for t in tasks.INTERMEDIATE_TASKS if tasks.TASKS[t].intermediate_split.get(source)]
            _fail(where, f"intermediate_task={task!r} has no {source} intermediate data; usable: {usable}")
        if source == "hub" or cfg["intermediate_size"] == FULL:
            continue  # hub pools are sized when the prepare run loads them, before any training
        held_out = cfg.get("held_out_examples", 0)
        try:
            pool = data.intermediate_pool_size(task, cfg["intermediate_languages"], source=source,
                                               data_dir=cfg["data_dir"], seed=cfg["seed"], held_out=held_out)
        except (KeyError, ValueError, FileNotFoundError) as err:
            _fail(where, str(err))
        if cfg["intermediate_size"] > pool:
            kept = f" with held_out_examples={held_out} reserved for validation" if held_out else ""
            _fail(where, f"intermediate_size={cfg['intermediate_size']} is larger than the pool of {pool} examples of "
                         f"{task} in {cfg['intermediate_languages']}{kept}; use at most {pool}")


def check_target(cfg: dict) -> None:
    task, source = cfg["target_task"], cfg["data_source"]
    where = f"target ({task})"
    if task not in tasks.TARGET_TASKS:
        _fail(where, f"target_task={task!r} is not an XTREME target task; allowed: {list(tasks.TARGET_TASKS)}")
    spec = tasks.TASKS[task]
    if source not in spec.sources:
        _fail(where, f"target_task={task!r} has no {source} data; sources: {list(spec.sources)}")
    if spec.family != schema.RETRIEVAL and tasks.target_training(task, source) is None:
        _fail(where, f"target_task={task!r} has no English training data on {source}")
    split = spec.eval_split[source]
    if not tasks.has_labels(task, split, source):
        _fail(where, f"target_task={task!r}: the evaluation split {split!r} has no labels on {source}")
    try:
        available = tasks.available(task, source, cfg["data_dir"]).get(split, [])
    except FileNotFoundError as err:
        _fail(where, str(err))
    wanted = [tasks.canonical_language(task, lang) for lang in cfg["eval_languages"]]
    missing = [lang for lang in wanted if lang not in available]
    if missing:
        _fail(where, f"eval_languages {missing} are not available for {task} ({split}, {source}); available: {available}")


def check_model(name: str) -> None:
    if name.startswith("embedded:"):
        from xfer_nb.models.embedded import EMBEDDED_NAMES
        if name.split(":", 1)[1] not in EMBEDDED_NAMES:
            _fail("model", f"model_name_or_path={name!r} is not an embedded model; embedded: "
                           f"{['embedded:' + n for n in EMBEDDED_NAMES]}")
        return
    if Path(name).expanduser().is_dir():
        return
    if tasks.env_offline():
        _fail("model", f"model_name_or_path={name!r} is a hub name, but the Hugging Face hub is unreachable "
                       f"(HF_HUB_OFFLINE=1); use a local folder or {EMBEDDED_MODEL!r}")
