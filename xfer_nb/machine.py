"""What a run's numbers depend on besides its config: the CPU and the numeric libraries.

Runs are bitwise deterministic on one machine, but the same run id gave different scores
in different sessions (2026-12-03). bf16 matmuls take different kernels on a CPU with AMX
(Intel Xeon) than on one with only AVX512-BF16 (AMD Zen 4), and a library upgrade can
change them too. `DONE.json` records this so that two runs of one id can be compared.
Reads files and package metadata only: no torch import in the sweep's process.
"""
from __future__ import annotations

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


@lru_cache(maxsize=1)
def fingerprint(cpuinfo_path: str = "/proc/cpuinfo") -> dict:
    """{"cpu": model name, "cpu_flags": the numeric ISA flags present, "packages": {name: version}}."""
    path = Path(cpuinfo_path)
    model, flags = _cpu(path.read_text() if path.is_file() else "")
    return {"cpu": model, "cpu_flags": flags, "packages": {p: _version(p) for p in PACKAGES}}


NOT_RECORDED = "not recorded"


def describe(recorded: dict | None) -> str:
    """One label per kind of machine, from a DONE.json's "machine" entry: 'AMD EPYC [avx2]'.
    Runs with one label used the same kernels; runs older than the record say so."""
    if not recorded or not recorded.get("cpu"):
        return NOT_RECORDED
    return f"{recorded['cpu']} [{' '.join(recorded.get('cpu_flags') or []) or 'no listed flags'}]"
