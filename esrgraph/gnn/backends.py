"""Choosing the device and the message-passing backend; binding a graph to a backend's ops.

``auto`` uses DGL where the installed DGL supports the device (the PyPI build:
CPU only) and the native PyTorch path otherwise. DGL is imported here only
when it is asked about or chosen.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from .blocks import Block
from .native import NativeOps
from .tensors import GraphTensors


def dgl_importable() -> bool:
    try:
        _import_dgl_backend()
    except Exception:  # a missing or broken DGL install fails in many ways (ImportError, OSError, ...)
        return False
    return True


def _import_dgl_backend():
    from . import dgl_backend

    return dgl_backend


def resolve_backend(backend: str, device: torch.device) -> str:
    """``auto`` -> ``dgl`` or ``native`` for ``device``; an explicit choice is checked."""
    if backend == "native":
        return backend
    if backend not in ("auto", "dgl"):
        raise ConfigError(f"gnn.backend: {backend!r} is not allowed; choose one of auto, dgl, native")
    usable = dgl_importable() and _import_dgl_backend().supports(device)
    if backend == "auto":
        return "dgl" if usable else "native"
    if not dgl_importable():
        raise ConfigError("gnn.backend is 'dgl', but dgl cannot be imported here; use native or auto")
    if not usable:
        raise ConfigError(f"gnn.backend is 'dgl', but this DGL build cannot run on {device}; use native or auto")
    return backend


def make_ops(backend: str, graph: GraphTensors | Block):
    """Ops object with ``num_dst``, ``u_add_v``, ``edge_softmax`` and ``u_mul_e_sum`` for ``graph``
    (the whole graph, or one sampled block)."""
    if backend == "native":
        return NativeOps(graph)
    if backend == "dgl":
        return _import_dgl_backend().DglOps(graph)
    raise ConfigError(f"gnn.backend: {backend!r} is not allowed; choose one of dgl, native")
