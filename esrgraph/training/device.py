"""The one place a device setting (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``) becomes a torch device."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..errors import ConfigError

PATTERN = r"auto|cpu|cuda(:\d+)?|mps"


def check_device(name: str, key: str) -> None:
    """Refuse, naming the config ``key``, a device this machine cannot use (checked when a config is resolved)."""
    if not re.fullmatch(PATTERN, name):
        raise ConfigError(f"{key}: {name!r} is not allowed; use auto, cpu, cuda, cuda:N or mps")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"{key}: {name!r}, but this torch sees no CUDA device; use cpu or auto")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"{key}: {name!r}, but this machine has {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})"
            )
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"{key}: 'mps', but this torch sees no MPS device; use cpu or auto")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto``: CUDA when torch sees it, else the CPU. A bare ``cuda`` under torchrun takes the
    process's own GPU (``local_rank``)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """The CPU computes bfloat16 products natively (AVX-512 BF16 or AMX), so bf16 matrix products pay."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def native_bf16(device: torch.device) -> bool:
    """bfloat16 matrix products are native on ``device``: a CUDA GPU that supports them, or such a CPU."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_native_bf16()


def training_precision(name: str, device: torch.device) -> str:
    """The training precision setting (``auto``, ``fp32``, ``bf16``) on ``device``: ``auto`` is bf16 where
    it is native (:func:`native_bf16`), else fp32."""
    if name != "auto":
        return name
    return "bf16" if native_bf16(device) else "fp32"
