"""The sentence model compiled by OpenVINO for the CPU (``embed.backend: openvino``).

OpenVINO runs the whole model (transformer, pooling, normalisation) as one
compiled graph in bfloat16 on chips with AMX or AVX-512 BF16, with fused
attention and none of PyTorch's per-operator overhead: measured 1.8× the torch
path's texts/s on one thread, and far more on two threads of a shared CPU,
where torch's threads slow down, at the same cosine to fp32 as bf16 autocast
(``benchmarks/README.md``). The
model is converted from the loaded PyTorch model by tracing it, nothing is
downloaded, and the converted model is kept under the run root's cache folder
(``models/<key>/``), keyed by the model, its inputs and the library versions.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from ..artifacts import remove_abandoned, temporary_sibling

log = logging.getLogger(__name__)

# Tracing reads every attribute of the model, the training-loss property too, which warns that a
# sentence model names no loss ("loss_type=None ... ForCausalLMLoss"): noise in every first run's log
TRANSFORMERS_MODEL_LOG = "transformers.modeling_utils"

# embed.precision -> OpenVINO's inference precision hint
PRECISIONS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


def available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class _Inputs(torch.nn.Module):
    """The sentence model with positional tensor inputs, as tracing wants them."""

    def __init__(self, model, names: Sequence[str]):
        super().__init__()
        self.model, self.names = model, list(names)

    def forward(self, *tensors):
        return self.model(dict(zip(self.names, tensors)))["sentence_embedding"]


def model_key(model_id: str, names: Sequence[str]) -> str:
    versions = f"openvino={version('openvino')}|torch={torch.__version__}"
    return hashlib.sha256(f"{model_id}|inputs={','.join(names)}|{versions}".encode()).hexdigest()[:16]


def compile_model(
    model, model_id: str, example: dict, precision: str, cache: Path | None
) -> Callable[[Iterable[list[np.ndarray]]], list[np.ndarray]]:
    """A function from batches of the tokenizer's arrays (each in the order of ``example``, the tokenizer's
    output for a few texts) to each batch's sentence embeddings [batch, dim].

    The batches run as concurrent requests, one stream per thread of the thread budget, each stream on
    its own thread: on 2 idle cores the transformer ran 1.18× the texts/s of one request on both threads,
    and the whole encoding 1.05–1.12×, with the same outputs (``benchmarks/README.md``)."""
    import openvino as ov

    converted = _converted(model, model_id, example, cache)
    streams = torch.get_num_threads()  # the same thread budget as the torch path
    config = {
        "INFERENCE_PRECISION_HINT": PRECISIONS[precision],
        "INFERENCE_NUM_THREADS": streams,
        "NUM_STREAMS": streams,
        "PERFORMANCE_HINT": "THROUGHPUT",
        "ENABLE_CPU_PINNING": False,  # pinned threads of several processes would crowd one core
    }
    queue = ov.AsyncInferQueue(ov.Core().compile_model(converted, "CPU", config), streams)
    outputs: dict[int, np.ndarray] = {}

    def keep(request, index: int) -> None:  # the request's buffer serves its next batch: copy it out
        outputs[index] = np.array(request.get_output_tensor(0).data, dtype=np.float32)

    queue.set_callback(keep)

    def run(batches: Iterable[list[np.ndarray]]) -> list[np.ndarray]:
        outputs.clear()
        count = 0
        for count, arrays in enumerate(batches, 1):  # waits only while every stream is busy
            queue.start_async(arrays, count - 1)
        queue.wait_all()
        return [outputs[index] for index in range(count)]

    return run


def _converted(model, model_id: str, example: dict, cache: Path | None):
    """The converted model: read from ``cache`` when it holds one, else converted (and kept there)."""
    import openvino as ov

    names = list(example)
    folder = cache / model_key(model_id, names) if cache is not None else None
    if folder is not None and folder.exists():
        try:
            return ov.Core().read_model(folder / "model.xml")
        except Exception as exc:  # the library raises its own kinds for a missing or damaged file
            log.warning("%s: cannot read the converted model (%s); converting again", folder, exc)
            shutil.rmtree(folder, ignore_errors=True)
    _no_usage_reports()
    start = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings(), _quiet(TRANSFORMERS_MODEL_LOG):
        # tracing records the padding-mask branches as taken: they are, for every batch the encoder forms
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        converted = ov.convert_model(_Inputs(model, names).eval(), example_input=tuple(example.values()))
    log.info("embed: converted the sentence model for OpenVINO in %.1f s", time.perf_counter() - start)
    if folder is None:
        return converted
    _save(ov, converted, folder)
    # run what a later run reads: the model as saved compiles to other kernels than the one in memory
    return ov.Core().read_model(folder / "model.xml")


@contextlib.contextmanager
def _quiet(name: str):
    """Only errors from the logger ``name`` while the block runs."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _no_usage_reports() -> None:
    """OpenVINO's converter sends a usage report to its vendor's analytics for every conversion unless
    the user opted out machine-wide. esrgraph promises no network at run time, so this process's
    converter is told not to: its report object is a per-process singleton, set up here first."""
    try:
        from openvino.tools.ovc.telemetry_utils import init_ovc_telemetry
    except ImportError:  # a build without the reporting package sends nothing
        return
    init_ovc_telemetry().consent = False


def _save(ov, converted, folder: Path) -> None:
    """Written into a temporary sibling and renamed into place, so a reader never sees half a model."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(folder)  # a conversion killed outright left its folder behind
    tmp = temporary_sibling(folder)
    try:
        ov.save_model(converted, tmp / "model.xml", compress_to_fp16=False)  # keep fp32 weights
        with contextlib.suppress(OSError):  # another process renamed its copy first: theirs serves as well
            tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
