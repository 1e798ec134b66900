"""The gnn stage on the tiny dataset: artifacts, checkpoints and exact resume."""

import json

import numpy as np
import pytest
import torch

from esrgraph.errors import EsrError
from esrgraph.gnn.store import load_item_graph
from esrgraph.pipeline import ensure
from esrgraph.runs import Run
from esrgraph.training.loop import EpochRecord

CHECKPOINTS = "gnn.checkpoints"
FAST = ["gnn.hidden=16", "gnn.heads=2", "gnn.projection=16", "gnn.patience=100"]


pytestmark = pytest.mark.usefixtures("one_thread")


class Interrupt(Exception):
    pass


def stop_after(epoch_to_stop: int):
    def hook(record: EpochRecord):
        if record.epoch == epoch_to_stop:
            raise Interrupt

    return (hook,)


def read(stage_dir, name):
    return json.loads((stage_dir / name).read_text())


WHOLE_GRAPH = ["gnn.link_weight=0.5"]
# 8 items in batches of 3, 2 sampled neighbours per relation: sampling, batch order and views all drawn;
# 3 steps an epoch, so 18 steps are 6 epochs
MINIBATCH = ["gnn.minibatch=true", "gnn.seed_batch_size=3", "gnn.fanouts=[2]", "gnn.epochs=18"]


@pytest.mark.parametrize(
    "backend, mode", [("auto", WHOLE_GRAPH), ("native", WHOLE_GRAPH), ("auto", MINIBATCH), ("native", MINIBATCH)]
)
def test_resume_after_interruption_reproduces_the_uninterrupted_run(tiny_config, backend, mode):
    settings = FAST + [
        "gnn.item_input=id",
        "gnn.epochs=6",
        f"gnn.backend={backend}",
        "gnn.feat_drop=0.2",
        "gnn.attn_drop=0.2",
        *mode,
    ]
    full = ensure(Run(tiny_config(*settings, "run.name=full")), "gnn")

    run = Run(tiny_config(*settings, "run.name=cut"))
    with pytest.raises(Interrupt):
        ensure(run, "gnn", callbacks=stop_after(3))
    assert not run.stage_dir("gnn").exists()  # nothing half-written
    index = json.loads((run.dir / CHECKPOINTS / "checkpoint.json").read_text())
    assert index["epoch"] == 3 and len(list((run.dir / CHECKPOINTS).glob("epoch-*.pt"))) == 1
    torch.manual_seed(12345)  # whatever happened in between, the restored RNG state decides
    resumed = ensure(run, "gnn", resume=True)

    assert np.array_equal(load_item_graph(full), load_item_graph(resumed))
    assert [h["loss"] for h in read(full, "history.json")["history"]] == [
        h["loss"] for h in read(resumed, "history.json")["history"]
    ]
    assert read(resumed, "manifest.json")["resumed_from"] == 3
    assert read(resumed, "manifest.json")["minibatch"] == (mode == MINIBATCH)
    assert len(read(resumed, "history.json")["history"]) == 6
    assert not (run.dir / CHECKPOINTS).exists()  # a finished stage drops its checkpoints


def test_checkpoints_load_with_weights_only(tiny_config):
    run = Run(tiny_config(*FAST, "gnn.item_input=id", "gnn.epochs=4"))
    with pytest.raises(Interrupt):
        ensure(run, "gnn", callbacks=stop_after(2))
    (path,) = (run.dir / CHECKPOINTS).glob("epoch-*.pt")
    state = torch.load(path, weights_only=True)
    assert {"model", "optimizer", "rng"} <= set(state)
    assert all(isinstance(v, torch.Tensor) for v in state["model"].values())
    best = torch.load(run.dir / CHECKPOINTS / "best.pt", weights_only=True)
    assert set(best) == set(state["model"])


def test_resume_with_other_settings_or_a_damaged_checkpoint(tiny_config, caplog):
    """The one rule of every training loop: --resume stops with the file named; "auto" (every command's default,
    an ablation) warns and starts over."""
    settings = FAST + ["gnn.item_input=id", "gnn.epochs=4"]
    run = Run(tiny_config(*settings))
    with pytest.raises(Interrupt):
        ensure(run, "gnn", callbacks=stop_after(2))
    other_seed = Run(tiny_config(*settings, "run.seed=7"))  # same run folder: run.* is not in its name
    assert other_seed.dir == run.dir
    with pytest.raises(EsrError, match="made with other settings"):
        ensure(other_seed, "gnn", resume=True)
    out = ensure(other_seed, "gnn", resume="auto")
    assert read(out, "manifest.json")["resumed_from"] == 0 and "made with other settings" in caplog.text
    assert not (run.dir / CHECKPOINTS).exists()  # the stale checkpoint goes once the stage is done
    fresh = ensure(Run(tiny_config(*settings, "run.seed=7", "run.name=fresh")), "gnn")
    assert np.array_equal(load_item_graph(out), load_item_graph(fresh))

    damaged = Run(tiny_config(*settings, "run.name=damaged"))
    with pytest.raises(Interrupt):
        ensure(damaged, "gnn", callbacks=stop_after(2))
    (path,) = (damaged.dir / CHECKPOINTS).glob("epoch-*.pt")
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(EsrError, match=f"{path.name}: checkpoint file damaged"):
        ensure(damaged, "gnn", resume=True)
    assert read(ensure(damaged, "gnn", resume="auto"), "manifest.json")["resumed_from"] == 0
    assert "checkpoint file damaged" in caplog.text


def test_llm_items_and_attribute_text_inputs(tiny_config):
    run = Run(
        tiny_config(*FAST, "gnn.epochs=3", "gnn.attribute_input=text", "gnn.combine=attention", "embed.max_tokens=64")
    )
    out = ensure(run, "gnn")
    emb = load_item_graph(out)
    assert emb.shape == (9, 16) and emb.dtype == np.float32 and not emb[0].any() and np.isfinite(emb).all()
    assert np.linalg.norm(emb[1:], axis=1).min() > 0
    manifest = read(out, "manifest.json")
    assert {"stage:embed", "stage:graph"} <= set(manifest["inputs"])
    assert manifest["config"]["attribute_text_model"]["model"] == "bundled"
    assert set(manifest["artifacts"]) == {"item_graph.npy", "probe.json", "history.json"}
    probe = read(out, "probe.json")
    assert list(probe["rows"]) == ["input features (LLM item embeddings)", "untrained encoder", "trained encoder"]
    assert len(read(out, "history.json")["history"]) == 3
    # up to date: a second call trains nothing
    mtime = (out / "item_graph.npy").stat().st_mtime_ns
    assert ensure(run, "gnn") == out and (out / "item_graph.npy").stat().st_mtime_ns == mtime
