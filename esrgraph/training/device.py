"""The one place a device setting (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``) becomes a torch device."""

from __future__ import annotations

import re

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
