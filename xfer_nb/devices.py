"""Where a run computes and in which precision: the one place that resolves ``device`` and
``precision`` ("auto" included), shared by training, prediction and embedding.

``precision="auto"`` is bf16 on CUDA with bf16 and on a CPU with native bf16 (oneDNN:
avx512_bf16 or AMX), fp32 elsewhere. Emulated bf16 is refused: a 1024x1024 matmul ran at
0.24 GFLOP/s in bf16 against 17 in fp32 on an AVX2-only EPYC. The precision a run used is
recorded with its results (``TrainResult.precision``), because the same config resolves
differently on different machines.
"""
from __future__ import annotations

import contextlib

import torch

from xfer_nb import distributed
from xfer_nb.train_args import DEVICES


def bf16_supported() -> bool:
    """Whether this CPU has native bf16 matmuls in oneDNN (avx512_bf16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def default_precision(device: str | torch.device = "cpu") -> str:
    """The fastest exact-enough precision here: 'bf16' on CUDA or a CPU with native bf16, else 'fp32'."""
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if bf16_supported() else "fp32"


def resolve_precision(precision: str, device: str | torch.device = "cpu") -> str:
    """`precision` with "auto" replaced by :func:`default_precision` of `device`."""
    return default_precision(device) if precision == "auto" else precision


def autocast_or_none(precision: str, device: torch.device):
    """The autocast context of a resolved `precision` on `device`, or None for fp32 (training
    needs to know: fp16 adds a gradient scaler). Raises for fp16 off CUDA and for bf16 on a
    CPU without native bf16."""
    if precision == "fp32":
        return None
    if precision == "fp16":
        if device.type != "cuda":
            raise ValueError(f"precision='fp16' needs a CUDA device; training would run on {device}. "
                             "Use 'bf16' or 'fp32'.")
        return torch.autocast("cuda", dtype=torch.float16)
    if device.type == "cpu" and not bf16_supported():
        raise RuntimeError("precision='bf16' needs a CPU with native bf16 (avx512_bf16 or AMX): "
                           "torch.ops.mkldnn._is_mkldnn_bf16_supported() is False here, and emulated bf16 is far "
                           "slower than fp32. Use precision='fp32' (xfer_nb.devices.default_precision() picks for you).")
    return torch.autocast(device.type, dtype=torch.bfloat16)


def autocast_for(precision: str, device: torch.device):
    """The autocast context of `precision` ("auto" resolved) on `device`; a null context for fp32."""
    return autocast_or_none(resolve_precision(precision, device), device) or contextlib.nullcontext()


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without CUDA -> ValueError.
    Under torchrun on CUDA each process gets ``cuda:LOCAL_RANK``."""
    if device not in DEVICES:
        raise ValueError(f"device={device!r} is not allowed; allowed: {list(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch.cuda.is_available() is False here (torch "
                         f"{torch.__version__}, CUDA build: {torch.version.cuda}); use device='auto' or 'cpu'.")
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", distributed.local_rank() if distributed.launched() else torch.cuda.current_device())
