"""Bad gnn settings fail with a message that names the key."""

import re

import pytest

from cli.main import main
from esrgraph.config import load_config
from esrgraph.errors import ConfigError
from esrgraph.gnn.backends import resolve_backend
from esrgraph.training.device import resolve_device


@pytest.mark.parametrize(
    "override, key",
    [
        ("gnn.tau=0", "gnn.tau"),
        ("gnn.tau=-0.5", "gnn.tau"),
        ("gnn.view1.edge_drop=1.0", "gnn.view1.edge_drop"),
        ("gnn.view2.edge_drop=-0.1", "gnn.view2.edge_drop"),
        ("gnn.view1.feature_mask=1.5", "gnn.view1.feature_mask"),
        ("gnn.feat_drop=1", "gnn.feat_drop"),
        ("gnn.attn_drop=1.0", "gnn.attn_drop"),
        ("gnn.backend=cudnn", "gnn.backend"),
        ("gnn.combine=max", "gnn.combine"),
        ("gnn.negatives=all", "gnn.negatives"),
        ("gnn.item_input=random", "gnn.item_input"),
        ("gnn.device=gpu", "gnn.device"),
        ("gnn.heads=5", "gnn.heads"),
        ("gnn.layers=0", "gnn.layers"),
        ("gnn.view3.edge_drop=0.1", "gnn.view3"),
        ("gnn.minibatch=sometimes", "gnn.minibatch"),
        ("gnn.fanouts=[10, 0]", r"gnn.fanouts[1]"),
        ("gnn.fanouts=[-2]", r"gnn.fanouts[0]"),
        ("gnn.fanouts=[5, 5, 5]", "gnn.fanouts"),
        ("gnn.seed_batch_size=1", "gnn.seed_batch_size"),
        ("gnn.minibatch_above=-1", "gnn.minibatch_above"),
    ],
)
def test_bad_setting_names_the_key(override, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(None, [override])


def test_bad_setting_from_yaml_names_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("gnn:\n  view2:\n    feature_mask: 1.0\n")
    with pytest.raises(ConfigError, match=r"gnn\.view2\.feature_mask: 1\.0 is out of range"):
        load_config(path)


def test_partial_view_section_keeps_that_views_defaults(tmp_path):
    path = tmp_path / "views.yaml"
    path.write_text("gnn:\n  view2:\n    edge_drop: 0.5\n")
    cfg = load_config(path)
    assert (cfg.gnn.view2.edge_drop, cfg.gnn.view2.feature_mask) == (0.5, 0.4)
    assert (cfg.gnn.view1.edge_drop, cfg.gnn.view1.feature_mask) == (0.2, 0.3)


def test_cli_reports_the_key_without_a_traceback(capsys):
    assert main(["pretrain-gnn", "-o", "gnn.tau=0"]) == 2
    err = capsys.readouterr().err
    assert "gnn.tau" in err and "Traceback" not in err


def test_backend_and_device_resolution():
    cpu = resolve_device("cpu")
    assert resolve_backend("native", cpu) == "native"
    assert resolve_backend("auto", cpu) in ("dgl", "native")
    with pytest.raises(ConfigError, match="gnn.backend"):
        resolve_backend("tpu", cpu)
    import torch

    if not torch.cuda.is_available():  # refused when the config is read, naming the key
        for key in ("gnn.device", "train.device", "embed.device"):
            with pytest.raises(ConfigError, match=f"{key}: 'cuda:7', but this torch sees no CUDA device"):
                load_config(None, [f"{key}=cuda:7"])


def test_the_size_rule_picks_minibatches_above_the_documented_number_of_items():
    cfg = load_config(None).gnn
    assert cfg.minibatch == "auto" and cfg.minibatch_above == 200_000
    assert not cfg.uses_minibatch(12_101) and not cfg.uses_minibatch(200_000) and cfg.uses_minibatch(200_001)
    assert load_config(None, ["gnn.minibatch=true"]).gnn.uses_minibatch(8)
    assert not load_config(None, ["gnn.minibatch=false", "gnn.minibatch_above=0"]).gnn.uses_minibatch(10**7)
    assert load_config(None, ["gnn.minibatch_above=100"]).gnn.uses_minibatch(101)
    # YAML reads on / off as booleans
    assert load_config(None, ["gnn.minibatch=on"]).gnn.minibatch is True


def test_minibatches_refuse_the_whole_graph_link_term():
    with pytest.raises(ConfigError, match=r"gnn\.link_weight"):
        load_config(None, ["gnn.minibatch=true", "gnn.link_weight=0.5"])
    auto = load_config(None, ["gnn.link_weight=0.5", "gnn.minibatch_above=1000"]).gnn
    assert not auto.uses_minibatch(1000)
    with pytest.raises(ConfigError, match=r"gnn\.link_weight"):
        auto.uses_minibatch(1001)
