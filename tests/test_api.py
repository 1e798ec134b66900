"""One training call: ``esr train-seq`` and the Python API train the same model and score the same."""

import json

import numpy as np
import pytest
import torch

from cli.main import main
from esrgraph.api import train_recommender
from esrgraph.config import load_config
from esrgraph.data.sequences import SequenceData
from esrgraph.data.store import load_dataset
from esrgraph.eval.evaluate import Evaluator
from tests.test_seq_train import run_cli

pytestmark = pytest.mark.usefixtures("one_thread")


def test_train_seq_and_the_api_give_identical_weights_and_metrics(tiny, tmp_path):
    """With readouts fitted after training (θ chosen on validation) and a cold item kept (its id
    embedding mapped from its text): both finish the model the same way."""
    settings = [
        "seq.readouts.mode=fitted",
        "seq.readouts.fit_epochs=2",
        "dataset.cold_items.keep_unseen=true",
        "dataset.groups.tail_user_share=0.5",
        "train.seeds=[3]",
    ]
    args = run_cli(tiny, tmp_path / "runs", *settings)
    assert main(["train-seq"] + args) == 0
    run_dir = tmp_path / "runs" / "r"
    cli_state = torch.load(run_dir / "seq" / "model-seed3.pt", weights_only=True)
    summary = json.loads((run_dir / "seq" / "manifest.json").read_text())["seeds"]["3"]
    assert "readouts" in summary and summary["cold_items"]["mapped"]

    cfg = load_config(None, args[1::2])
    trained = train_recommender(cfg, seed=3)
    api_state = trained.model.state_dict()
    assert set(api_state) == set(cli_state)
    assert all(torch.equal(api_state[name], cli_state[name]) for name in cli_state)
    assert trained.summary["readouts"]["theta"] == summary["readouts"]["theta"]

    data = SequenceData(load_dataset(run_dir / "dataset"), cfg.seq.max_length)
    metrics = Evaluator(data, cfg.eval, 64, torch.device("cpu")).evaluate(trained.model, "test")
    written = json.loads((run_dir / "eval" / "metrics.json").read_text())["per_seed"]["3"]
    for protocol in ("sampled", "full"):
        for group, values in written[protocol].items():
            for name, value in values.items():
                if value is not None and name != "users":
                    assert np.isclose(metrics[protocol][group][name], value, atol=1e-9), (protocol, group, name)
