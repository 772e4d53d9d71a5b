"""What a run's numbers depend on besides its config: the CPU, the GPUs and the numeric libraries.

Runs are bitwise deterministic on one machine, but the same run id gave different scores
in different sessions (2026-12-03). bf16 matmuls take different kernels on a CPU with AMX
(Intel Xeon) than on one with only AVX512-BF16 (AMD Zen 4), and a library upgrade can
change them too. `DONE.json` records this so that two runs of one id can be compared.
A GPU study's runs name their GPUs too (read from the NVIDIA driver's
``/proc/driver/nvidia/gpus/*/information``), so a report does not describe them by the
host's CPU alone. Reads files and package metadata only: no torch import in the sweep's
process.
"""
from __future__ import annotations

import os
import platform
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGES = ("torch", "transformers", "accelerate", "datasets")
# the instruction sets that choose the bf16/fp32 kernels (oneDNN dispatch)
NUMERIC_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2")


def _cpu(cpuinfo: str) -> tuple[str, list[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name":
            model = value.strip()
        elif key == "flags":
            flags = set(value.split())
    return model, [f for f in NUMERIC_FLAGS if f in flags]


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _nvidia_models(root: Path) -> list[str]:
    """The model of every GPU the NVIDIA driver lists, in PCI bus order (its folder names)."""
    models = []
    for info in sorted(root.glob("*/information")):
        fields = dict(line.split(":", 1) for line in info.read_text().splitlines() if ":" in line)
        models.append(fields.get("Model", "NVIDIA GPU").strip())
    return models


def visible_gpus(models: list[str], cuda_visible_devices: str | None) -> list[str]:
    """The GPUs a process may use: CUDA_VISIBLE_DEVICES applied to the host's list. Indices pick
    (CUDA stops at the first invalid one, so "-1" hides all); UUIDs keep their count only,
    since the driver's list cannot map them without NVML."""
    if cuda_visible_devices is None:
        return list(models)
    items = [v.strip() for v in cuda_visible_devices.split(",") if v.strip()]
    picked = []
    for item in items:
        try:
            index = int(item)
        except ValueError:
            return list(models[:len(items)])
        if not 0 <= index < len(models):
            break
        picked.append(models[index])
    return picked


@lru_cache(maxsize=1)
def fingerprint(cpuinfo_path: str = "/proc/cpuinfo", nvidia_root: str = "/proc/driver/nvidia/gpus") -> dict:
    """{"cpu": model name, "cpu_flags": the numeric ISA flags present, "gpus": the visible
    NVIDIA GPUs' models, "packages": {name: version}}."""
    path = Path(cpuinfo_path)
    model, flags = _cpu(path.read_text() if path.is_file() else "")
    gpus = visible_gpus(_nvidia_models(Path(nvidia_root)), os.environ.get("CUDA_VISIBLE_DEVICES"))
    return {"cpu": model, "cpu_flags": flags, "gpus": gpus, "packages": {p: _version(p) for p in PACKAGES}}


NOT_RECORDED = "not recorded"


def describe(recorded: dict | None) -> str:
    """One label per kind of machine, from a DONE.json's "machine" entry: 'AMD EPYC [avx2]',
    'Intel Xeon [avx512f avx2] + 4x NVIDIA H100 80GB HBM3'. Runs with one label used the same
    kernels; runs older than the record say so."""
    if not recorded or not recorded.get("cpu"):
        return NOT_RECORDED
    label = f"{recorded['cpu']} [{' '.join(recorded.get('cpu_flags') or []) or 'no listed flags'}]"
    gpus = recorded.get("gpus") or []
    counts = {model: gpus.count(model) for model in dict.fromkeys(gpus)}
    return label + "".join(f" + {n}x {model}" for model, n in counts.items())
