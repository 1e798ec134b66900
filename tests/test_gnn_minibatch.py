"""Mini-batch pretraining: its step against the whole-graph step, its epochs, and its memory."""

import pytest
import torch

from esrgraph.gnn.config import GnnConfig, SecondViewConfig, ViewConfig
from esrgraph.gnn.train import MinibatchPretrainTask, pretraining_loop, step_budget
from tests.test_gnn_blocks import BACKENDS, model_for, small_graph

pytestmark = pytest.mark.usefixtures("one_thread")

NO_VIEWS = {"view1": ViewConfig(0.0, 0.0), "view2": SecondViewConfig(0.0, 0.0)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_batch_of_the_whole_graph_gives_the_full_graph_loss(backend):
    """Every item a seed, every neighbour, no augmentation: the mini-batch step is the whole-graph step."""
    graph = small_graph()
    cfg = GnnConfig(hidden=16, heads=2, projection=8, minibatch=True, fanouts=None, seed_batch_size=4096, **NO_VIEWS)
    model = model_for(cfg, graph, backend)
    full = model.loss(graph, cfg)
    full.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    task = MinibatchPretrainTask(model, graph, cfg, torch.Generator().manual_seed(3))
    (seeds,) = task.batches(1)
    assert task.sampler.name == backend and sorted(seeds.tolist()) == list(range(1, 301))
    got = task.loss(seeds, model)
    got.backward()
    assert abs(float(got) - float(full)) < 1e-5
    # learned embeddings get sparse gradients on blocks: the rows of the step's input nodes
    grads = {n: p.grad.to_dense() for n, p in model.named_parameters() if p.grad is not None}
    assert {n for n, p in model.named_parameters() if p.grad is not None and p.grad.is_sparse} == {
        f"encoder.inputs.embeddings.{t}.weight" for t in ("brand", "category", "price")
    }
    assert set(grads) == set(want) and len(want) > 20
    for name, grad in grads.items():
        torch.testing.assert_close(grad, want[name], rtol=1e-5, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")


def test_an_epoch_holds_every_item_once_in_equal_batches():
    graph = small_graph(1000)
    cfg = GnnConfig(hidden=16, heads=2, seed_batch_size=300)
    task = MinibatchPretrainTask(model_for(cfg, graph, "native"), graph, cfg, torch.Generator().manual_seed(0))
    batches = task.batches(1)
    assert [len(b) for b in batches] == [250] * 4  # not 300, 300, 300, 100
    assert sorted(torch.cat(batches).tolist()) == list(range(1, 1001))
    assert not torch.equal(torch.cat(batches), torch.cat(task.batches(2)))  # a new order each epoch


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_step_builds_tensors_in_the_size_of_the_batch_not_the_graph(backend):
    """The input projection sees only the step's input nodes, and nothing autograd keeps has a row per
    graph node: the same batch costs the same on a graph ten times larger."""

    def one_step(items: int) -> tuple[int, int, int]:
        graph = small_graph(items, seed=6)
        cfg = GnnConfig(hidden=16, heads=2, projection=8, fanouts=[5], seed_batch_size=64)
        model = model_for(cfg, graph, backend, in_dim=32)
        task = MinibatchPretrainTask(model, graph, cfg, torch.Generator().manual_seed(0))
        projected, kept = [], []
        model.encoder.inputs.register_forward_hook(lambda _, args, out: projected.append(out["item"].shape[0]))

        def pack(t):
            kept.append(t.shape[0] if t.dim() else 1)
            return t

        seeds = task.batches(1)[0]
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            task.loss(seeds, model).backward()
        inputs = task.sampler.sample({"item": seeds}, torch.Generator().manual_seed(0))[0].num_nodes
        return max(projected), max(kept), sum(inputs.values())

    # 64 seeds, each with about 5 attributes, each attribute with 5 sampled items: a bound without the graph
    bound = 64 * (1 + 5 * 5)
    small, large = one_step(20_000), one_step(200_000)
    for projected, kept, inputs in (small, large):
        assert projected <= bound and kept <= 2 * bound and inputs <= 2 * bound
    assert large[0] < 2 * small[0] and large[2] < 2 * small[2]  # ten times the graph, not ten times the step


def test_epochs_and_patience_count_steps_with_minibatches():
    """A whole-graph epoch is one step; mini-batch epochs of S steps count S toward both limits."""
    graph = small_graph(1000)
    cfg = GnnConfig(hidden=16, heads=2, seed_batch_size=300, epochs=10, patience=5)
    model = model_for(cfg, graph, "native")
    loop = pretraining_loop(model, graph, cfg, minibatch=True)
    assert loop.task.steps_per_epoch == 4 and loop.epochs == 3 and loop.rule().patience == 2
    whole = pretraining_loop(model, graph, cfg)
    assert whole.epochs == 10 and whole.rule().patience == 5
    assert step_budget(GnnConfig(), 977) == (1, 1)  # a million items in batches of 1024
