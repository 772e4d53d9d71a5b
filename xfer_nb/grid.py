"""Params YAML → the grid of runs, validated before anything runs.

A params file names the axes and the fixed settings:

    extends: defaults.yaml          # optional; merged recursively, this file wins
    name: smoke
    axes:                           # the grid is the product of these lists ...
      intermediate_task: [none, xnli]
      intermediate_size: [64, 256]
      language_set: [en, en+close]
      target_task: [pawsx, udpos]
      seed: [0, 1]
    exclude:                        # ... minus the points matching any of these
      - {language_set: en+close, intermediate_size: 64}
    language_sets: {en: [en], en+close: [en, fr, de]}
    settings: {model_name_or_path: ...}   # every stage that has the field
    prepare: {...}  intermediate: {...}  target: {...}   # one stage's fields
    sweep: {...}                    # how to run (workers, executor, slurm)

A target field may also be given per target task, and an intermediate field per
intermediate task, as a mapping from task names (and `default`) to values:
`max_train_examples: {panx: 2000, default: 500}`, `learning_rate: {udpos: 3.0e-4, default:
5.0e-5}`. A task the mapping does not name gets `default`, or the field's own default (a
multi-task intermediate run looks up its whole name, e.g. `mnli+udpos`).

An axis value or setting goes to every stage whose config has that field.

Where a value is given twice, one rule decides (and `Plan.notes` says which won):
- an axis beats everything else;
- a file beats the file it `extends`, whatever the section: `settings: {eval_batch_size: 8}`
  in study.yaml beats `target: {eval_batch_size: 64}` in defaults.yaml;
- within one file, a key may not be in `settings` and in a stage section with different
  values: that is rejected as a conflict.
(Inside the merged result a stage section beats `settings`, which is then only what the
rule above left there.)

The
no-intermediate baseline (task `none` or size 0) is one point per seed and target task,
whatever the size and language-set axes say. Each stage runs once per distinct config:
one prepare run serves every intermediate run on it, and one intermediate run serves
every target task trained on it.
"""
from __future__ import annotations

import copy
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from xfer_nb import config as C
from xfer_nb.runs import STAGE_ORDER, RunSpec

TOP_KEYS = ("extends", "name", "description", "axes", "exclude", "language_sets", "settings",
            "prepare", "intermediate", "target", "sweep", "analysis")
SWEEP_KEYS = ("workers", "executor", "slurm")


class Params(dict):
    """A merged params file, with `notes` on values that one file set over another."""

    def __init__(self, *args, notes: list[str] | None = None, **kw):
        super().__init__(*args, **kw)
        self.notes: list[str] = list(notes or [])


@dataclass
class Plan:
    """The expanded grid: unique run specs per stage, and each grid point's target run."""

    name: str
    params: dict[str, Any]
    stages: dict[str, list[RunSpec]] = field(default_factory=lambda: {s: [] for s in STAGE_ORDER})
    points: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # which of two given values won (see the module doc)

    def all_specs(self) -> list[RunSpec]:
        return [spec for stage in STAGE_ORDER for spec in self.stages[stage]]

    def counts(self) -> dict[str, int]:
        return {stage: len(specs) for stage, specs in self.stages.items()}


def load_params(path: str | os.PathLike) -> Params:
    """Read a params file with safe YAML loading, merging what it `extends`."""
    notes: list[str] = []
    params = _load_merged(Path(path), (), notes)
    params.setdefault("name", Path(path).stem)
    return Params(params, notes=notes)


def _read_yaml(path: Path) -> Any:
    """One YAML file, safely: a syntax error names the line and column, a tag that would
    build a Python object is refused, an empty file is an error."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise C.ConfigError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from None
    if all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()):
        raise C.ConfigError(f"{path}: the params file is empty; it must set at least the grid "
                            "(e.g. `extends: defaults.yaml` and `axes: {target_task: [pawsx]}`)")
    try:
        return yaml.safe_load(text)
    except yaml.constructor.ConstructorError as err:
        mark = err.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise C.ConfigError(f"{path}{where}: {err.problem}; params files are plain YAML (no tags such as "
                            "!!python/object)") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise C.ConfigError(f"{path}{where}: YAML syntax error: {problem}") from None


def _load_merged(path: Path, chain: tuple[Path, ...], notes: list[str]) -> dict[str, Any]:
    if not path.is_file():
        via = f" (extended by {chain[-1]})" if chain else ""
        raise FileNotFoundError(f"params file {str(path)!r} does not exist{via}")
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(p.name for p in (*chain, resolved))
        raise C.ConfigError(f"{path}: `extends` includes itself ({cycle}); remove the cycle")
    params = _read_yaml(path)
    if not isinstance(params, dict):
        raise C.ConfigError(f"{path}: a params file must be a mapping, got {type(params).__name__}")
    unknown = sorted(set(params) - set(TOP_KEYS))
    if unknown:
        raise C.ConfigError(f"{path}: unknown top-level key(s) {unknown}; allowed: {list(TOP_KEYS)}")
    if params.get("analysis") is not None:
        from xfer_nb import analysis_params
        try:
            analysis_params.parse(params["analysis"])
        except analysis_params.AnalysisParamsError as err:
            raise C.ConfigError(f"{path}: {err}") from None
    _check_twice_in_one_file(path, params)
    base = params.pop("extends", None)
    if base:
        if not isinstance(base, str):
            raise C.ConfigError(f"{path}: extends={base!r} must be a file name (relative to {path.parent})")
        base_params = _load_merged(path.parent / base, (*chain, resolved), notes)
        base_params.pop("name", None)
        _settings_beat_base_sections(path, path.parent / base, base_params, params, notes)
        params = _merge(base_params, params)
    return params


def _check_twice_in_one_file(path: Path, params: dict) -> None:
    """Reject a key set in `settings` and in a stage section of one file to different values."""
    settings = params.get("settings") or {}
    if not isinstance(settings, dict):
        raise C.ConfigError(f"{path}: settings must be a mapping of parameters, got {settings!r}")
    for stage in STAGE_ORDER:
        section = params.get(stage) or {}
        if not isinstance(section, dict):
            raise C.ConfigError(f"{path}: {stage} must be a mapping of parameters, got {section!r}")
        for key in sorted(set(settings) & set(section)):
            if settings[key] != section[key]:
                raise C.ConfigError(f"{path}: {key} is given twice with different values: settings: {key}: "
                                    f"{settings[key]!r} and {stage}: {key}: {section[key]!r}; keep one")


def _settings_beat_base_sections(path: Path, base_path: Path, base: dict, over: dict, notes: list[str]) -> None:
    """A file's `settings` beat the stage sections of the file it extends: drop those keys
    there (noting each value that changes), so the merged stage section cannot win. Also
    note where the file's stage section overrides the base file's `settings`."""
    over_settings = over.get("settings") or {}
    base_settings = base.get("settings") or {}
    for stage in STAGE_ORDER:
        section = base.get(stage)
        if isinstance(section, dict):
            for key in sorted(set(over_settings) & set(section)):
                old = section.pop(key)
                if old != over_settings[key]:
                    notes.append(f"{stage}.{key}: {over_settings[key]!r} from settings in {path.name} wins over "
                                 f"{stage}: {key}: {old!r} in {base_path.name} (a file beats the file it extends)")
        for key, value in sorted((over.get(stage) or {}).items()):
            if key in base_settings and key not in over_settings and value != base_settings[key]:
                notes.append(f"{stage}.{key}: {value!r} from {stage} in {path.name} wins over settings: {key}: "
                             f"{base_settings[key]!r} in {base_path.name} (a file beats the file it extends)")


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _stage_fields() -> dict[str, set[str]]:
    return {stage: set(C.field_names(cls)) for stage, cls in C.STAGES.items()}


def _matches(point: dict, rule: dict) -> bool:
    for key, want in rule.items():
        options = want if isinstance(want, list) else [want]
        if point.get(key) not in options:
            return False
    return True


def _is_baseline(point: dict) -> bool:
    return point.get("intermediate_task", C.NO_INTERMEDIATE) == C.NO_INTERMEDIATE or point.get("intermediate_size", 1) == 0


def expand(params: dict[str, Any], *, check_data: bool = True, for_running: bool = True,
           outputs: str | os.PathLike | None = None) -> Plan:
    """Expand and validate the whole grid; raise ConfigError on the first bad value.

    check_data: check tasks, languages and sizes against the data (xfer_nb.validate);
    for_running: also check that each model can be loaded here (off for `xfer-nb plan`).
    outputs: where the file-hash cache of the data fingerprints lives (`<outputs>/cache`);
    None: hash in memory only, write nothing."""
    fields = _stage_fields()
    all_fields = set().union(*fields.values())
    axes = params.get("axes") or {}
    for key, values in axes.items():
        if key not in all_fields:
            raise C.ConfigError(f"axes: unknown axis {key!r}; allowed: {sorted(all_fields)}")
        if not isinstance(values, list) or not values:
            raise C.ConfigError(f"axes: {key}={values!r} must be a non-empty list of values")
    settings = params.get("settings") or {}
    for key in settings:
        if key not in all_fields:
            raise C.ConfigError(f"settings: unknown parameter {key!r}; allowed: {sorted(all_fields)}")
    language_sets = params.get("language_sets") or {"en": ["en"]}
    rules = params.get("exclude") or []
    for rule in rules:
        bad = [k for k in rule if k not in axes]
        if bad:
            raise C.ConfigError(f"exclude: rule {rule} names {bad}, which are not axes; axes: {sorted(axes)}")

    name = params.get("name", "study")
    if not isinstance(name, str):
        raise C.ConfigError(f"name={name!r} must be a string")
    from xfer_nb.paths import check_name
    check_name(name, what="name")
    plan = Plan(name=name, params=params, notes=list(getattr(params, "notes", [])))
    sweep_settings(plan)
    data = _DataIdentity(outputs)
    seen: dict[str, set[str]] = {s: set() for s in STAGE_ORDER}
    keys = list(axes)
    points = [dict(zip(keys, combo)) for combo in itertools.product(*(axes[k] for k in keys))]
    points = [p for p in points if not any(_matches(p, rule) for rule in rules)]
    streams = _stream_sizes(points, settings)
    for point in points:
        specs = _point_specs(point, params, settings, language_sets, data, streams)
        for spec in specs.values():
            if spec.run_id not in seen[spec.stage]:
                seen[spec.stage].add(spec.run_id)
                plan.stages[spec.stage].append(spec)
        target = specs["target"]
        entry = {**_axes_of(point), "target_run": target.run_id}
        if entry not in plan.points:
            plan.points.append(entry)
    if not plan.stages["target"]:
        raise C.ConfigError("the grid is empty: every point was excluded, or no target_task axis/setting was given")
    if check_data:
        from xfer_nb.validate import check_plan
        check_plan(plan, for_running=for_running)
    data.hashes.save()  # only for a valid plan: bad input writes nothing
    return plan


def _stream_group(point: dict, settings: dict) -> tuple:
    return (point.get("intermediate_task", settings.get("intermediate_task")),
            point.get("language_set", "en"), point.get("seed", settings.get("seed", 0)))


def _stream_sizes(points: list[dict], settings: dict) -> dict[tuple, list[int]]:
    """The intermediate sizes of each (task, language set, seed) in the grid: with
    size_schedule 'stream' they branch off one stream (`IntermediateConfig.stream_sizes`)."""
    groups: dict[tuple, set[int]] = {}
    for point in points:
        if not _is_baseline(point) and "intermediate_size" in point:
            groups.setdefault(_stream_group(point, settings), set()).add(point["intermediate_size"])
    return {key: sorted(sizes) for key, sizes in groups.items()}


def _axes_of(point: dict) -> dict:
    point = dict(point)
    if _is_baseline(point):
        point.update(intermediate_task=C.NO_INTERMEDIATE, intermediate_size=0, language_set=C.NO_INTERMEDIATE)
    return point


def _stage_values(stage: str, point: dict, params: dict, settings: dict) -> dict[str, Any]:
    names = set(C.field_names(C.STAGES[stage]))
    section = params.get(stage) or {}
    if not isinstance(section, dict):
        raise C.ConfigError(f"{stage}: must be a mapping of parameters, got {section!r}")
    unknown = sorted(set(section) - names)
    if unknown:
        raise C.ConfigError(f"{stage}: unknown parameter(s) {unknown}; allowed: {sorted(names)}")
    values = {k: v for k, v in settings.items() if k in names}
    values.update(section)
    values.update({k: v for k, v in point.items() if k in names})
    return values


def _per_task(values: dict[str, Any], stage: str, task: str) -> dict[str, Any]:
    """Resolve fields given as {task: value, default: value} for this run's task (the target
    task for target fields, the intermediate task for intermediate ones)."""
    from xfer_nb import tasks
    allowed = sorted(tasks.TASKS) + ["default"]
    resolved = {}
    for key, value in values.items():
        if not isinstance(value, dict):
            resolved[key] = value
            continue
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise C.ConfigError(f"{stage}: {key}={value!r} names {unknown}, which are neither tasks nor 'default'; "
                                f"allowed keys: {allowed}")
        if task in value or "default" in value:
            resolved[key] = value.get(task, value.get("default"))
    return resolved


class _DataIdentity:
    """Each run's data identity (`xfer_nb.fingerprint.run_data`), computed once per config."""

    def __init__(self, outputs: str | os.PathLike | None):
        from xfer_nb import fingerprint
        self.hashes = fingerprint.default_hashes(outputs) if outputs is not None else fingerprint.FileHashes(None)
        self.memo: dict[str, dict] = {}

    def spec(self, stage: str, config: dict, upstream: dict, label: str) -> RunSpec:
        from xfer_nb import fingerprint, io
        key = io.stable_json([stage, config])
        if key not in self.memo:
            try:
                self.memo[key] = fingerprint.run_data(stage, config, self.hashes)
            except FileNotFoundError as err:
                raise C.ConfigError(f"{stage}: {err}") from None
        data = self.memo[key]
        if data.get("data_dir"):
            config = {**config, "data_dir": data["data_dir"]}  # the resolved folder, in the config and the id
        return RunSpec(stage, config, upstream, label, data)


def _point_specs(point: dict, params: dict, settings: dict, language_sets: dict,
                 data: _DataIdentity | None = None, streams: dict[tuple, list[int]] | None = None
                 ) -> dict[str, RunSpec]:
    data = data or _DataIdentity(None)
    group = _stream_group(point, settings)
    point = _axes_of(point)
    seed = point.get("seed", settings.get("seed", 0))
    specs: dict[str, RunSpec] = {}
    upstream: dict[str, str] = {}
    if point["intermediate_task"] != C.NO_INTERMEDIATE:
        name = point.get("language_set", "en")
        if name not in language_sets:
            raise C.ConfigError(f"language_set={name!r} is not defined; language_sets has {sorted(language_sets)}")
        values = _stage_values("prepare", point, params, settings)
        values["intermediate_languages"] = list(language_sets[name])
        prepare = C.from_dict(C.PrepareConfig, values, where="prepare")
        label = f"{prepare.intermediate_task}-{name}-n{prepare.intermediate_size}-s{prepare.seed}"
        specs["prepare"] = data.spec("prepare", C.to_dict(prepare), {}, label)
        inter_values = _per_task(_stage_values("intermediate", point, params, settings), "intermediate",
                                 prepare.intermediate_task)
        if inter_values.get("size_schedule") == "stream":
            inter_values = _with_stream_sizes(inter_values, prepare, (streams or {}).get(group))
        inter = C.from_dict(C.IntermediateConfig, inter_values, where="intermediate")
        specs["intermediate"] = RunSpec("intermediate", C.to_dict(inter), {"prepare": specs["prepare"].run_id}, label)
        upstream = {"intermediate": specs["intermediate"].run_id}
        base_label = label
    else:
        base_label = f"baseline-s{seed}"
    values = _stage_values("target", point, params, settings)
    values = _per_task(values, "target", values.get("target_task", ""))
    target = C.from_dict(C.TargetConfig, values, where="target")
    specs["target"] = data.spec("target", C.to_dict(target), upstream, f"{target.target_task}--{base_label}")
    return specs


def _with_stream_sizes(values: dict, prepare: C.PrepareConfig, axis_sizes: list[int] | None) -> dict:
    """A stream run's `stream_sizes`: given by hand, or the grid's sizes of its task, language
    set and seed; checked against what one stream can be."""
    if "+" in prepare.intermediate_task:
        raise C.ConfigError(f"intermediate: size_schedule='stream' trains one task; intermediate_task="
                            f"{prepare.intermediate_task!r} has several. Use size_schedule='separate'.")
    size = prepare.intermediate_size
    if size == C.FULL:
        raise C.ConfigError("intermediate: size_schedule='stream' needs explicit sizes; intermediate_size=-1 (the "
                            "full pool) cannot be a branch point. Give the pool's size as a number.")
    sizes = values.get("stream_sizes") or axis_sizes or [size]
    if size not in sizes:
        raise C.ConfigError(f"intermediate: stream_sizes={sizes} does not include intermediate_size={size}; "
                            "list every size that shares the stream, or leave stream_sizes empty for the grid's.")
    return {**values, "stream_sizes": sorted(sizes)}


def sweep_settings(plan: Any) -> dict[str, Any]:
    """The params file's `sweep:` section, checked."""
    section = (getattr(plan, "params", None) or {}).get("sweep") or {}
    if not isinstance(section, dict):
        raise ValueError(f"sweep: must be a mapping, got {section!r}")
    unknown = sorted(set(section) - set(SWEEP_KEYS))
    if unknown:
        raise ValueError(f"sweep: unknown key(s) {unknown}; allowed: {list(SWEEP_KEYS)}")
    workers = section.get("workers", 1)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise C.ConfigError(f"sweep.workers={workers!r} is not allowed; use a whole number >= 1")
    executors = ("local", "slurm", "submitit-local")
    if section.get("executor", "local") not in executors:
        raise C.ConfigError(f"sweep.executor={section['executor']!r} is not allowed; use one of {list(executors)}")
    return section


def load_plan(params_file: str | os.PathLike, for_running: bool = True, outputs: str | os.PathLike | None = None):
    """The validated plan of a params file; `outputs`: where the data-hash cache lives."""
    return expand(load_params(params_file), for_running=for_running, outputs=outputs)
