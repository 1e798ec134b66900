from pathlib import Path

import pytest

from esrgraph.config import load_config
from esrgraph.errors import ConfigError


def test_defaults_point_at_bundled_data():
    cfg = load_config()
    assert cfg.dataset.interactions.path.startswith("bundled:")
    assert cfg.embed.batch_size == 16 and cfg.dataset.min_user_interactions == 3


def test_overrides_are_typed():
    cfg = load_config(
        None,
        [
            "embed.batch_size=64",
            "dataset.groups.tail_user_share=0.75",
            "embed.cache=false",
            "embed.item_template=['{title}']",
            "run.name=x",
        ],
    )
    assert cfg.embed.batch_size == 64 and cfg.dataset.groups.tail_user_share == 0.75
    assert cfg.embed.cache is False and cfg.embed.item_template == ["{title}"] and cfg.run.name == "x"


def test_override_values_that_yaml_would_read_as_syntax_are_text():
    assert load_config(None, ["dataset.metadata.category_separator=|"]).dataset.metadata.category_separator == "|"
    assert load_config(None, ["dataset.metadata.category_separator=>"]).dataset.metadata.category_separator == ">"
    assert load_config(None, ["dataset.metadata.category_separator=#"]).dataset.metadata.category_separator == "#"
    assert load_config(None, ["dataset.metadata.category_separator=null"]).dataset.metadata.category_separator is None


def test_exponent_without_dot_is_a_float(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dataset:\n  groups:\n    tail_item_share: 5e-1\n")
    assert load_config(path).dataset.groups.tail_item_share == 0.5


def test_extends_and_paths_relative_to_each_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "base.yaml").write_text("dataset:\n  name: base\n  interactions:\n    path: data/x.txt\n")
    (tmp_path / "sub" / "child.yaml").write_text("extends: ../base.yaml\ndataset:\n  metadata:\n    path: m.json\n")
    cfg = load_config(tmp_path / "sub" / "child.yaml", ["seq.hidden_size=32"])
    assert cfg.dataset.name == "base"
    assert Path(cfg.dataset.interactions.path) == (tmp_path / "data" / "x.txt").resolve()
    assert Path(cfg.dataset.metadata.path) == (tmp_path / "sub" / "m.json").resolve()
    assert cfg.embed.pca_dim == 32  # follows seq.hidden_size


@pytest.mark.parametrize(
    "override, message",
    [
        ("embed.batch_siz=3", "embed.batch_siz: unknown key (did you mean 'batch_size'?)"),
        ("nosuch.key=1", "nosuch: unknown key"),
        ("embed.batch_size=abc", "embed.batch_size: expected an integer"),
        ("embed.batch_size=2.5", "embed.batch_size: expected an integer"),
        ("embed.batch_size=0", "embed.batch_size: 0 is out of range; expected a value >= 1"),
        ("dataset.groups.tail_user_share=1.0", "dataset.groups.tail_user_share: 1.0 is out of range"),
        ("embed.precision=fp8", "embed.precision: 'fp8' is not allowed; choose one of auto, fp32, bf16, fp16"),
        ("embed.cache=yes please", "embed.cache: expected true or false"),
        ("embed.model=null", "embed.model: a value is required"),
        ("embed.batch_size.x=1", "embed.batch_size: is a value, not a section"),
        ("dataset.min_user_interactions=2", "dataset.min_user_interactions: 2 is out of range"),
        ("embed.item_template=['{titel}']", "embed.item_template[0]: unknown field {titel}"),
        ("embed.device=gpu", "embed.device: 'gpu' is not allowed"),
        ("embed", "expected KEY=VALUE"),
    ],
)
def test_bad_settings_name_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert message in str(err.value)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.seeds=[99999999999999999999]", "train.seeds[0]: 99999999999999999999 is out of range; integers must"),
        ("dataset.join.offset=-99999999999999999999", "dataset.join.offset: -99999999999999999999 is out of range"),
        ("run.seed=4294967296", "run.seed: 4294967296 is out of range; expected a value >= 0 and <= 4294967295"),
        ("tune.seed=4294967296", "tune.seed: 4294967296 is out of range"),
        ("train.lr=.inf", "train.lr: inf is not allowed; expected a finite number"),
        ("train.lr=1e400", "train.lr: inf is not allowed; expected a finite number"),
        ("seq.dropout=.nan", "seq.dropout: nan is not allowed; expected a finite number"),
        ("tune.space={train.lr: {low: 0.1, high: .inf}}", "tune.space.train.lr.high: inf is not allowed; expected a"),
        ("train.weight_decay=1" + "0" * 400, "train.weight_decay: 1" + "0" * 400 + " is too large for a number"),
    ],
)
def test_numbers_beyond_what_their_consumers_take_name_the_key(override, message):
    """Integers fit in 64 bits (numpy's global seeds in 32), floats are finite: otherwise torch or numpy
    fails deep inside a stage with a traceback."""
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert message in str(err.value)


def test_the_seed_from_the_issue_is_one_line_and_exit_2(capsys):
    from cli.main import main

    assert main(["train-seq", "-o", "train.seeds=[99999999999999999999]"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("esr: error: train.seeds[0]: 99999999999999999999 is out of range")


def test_a_field_may_allow_infinity_but_never_nan():
    from dataclasses import dataclass

    from esrgraph.config_schema import build, field

    @dataclass
    class Limits:
        budget: float = field(1.0, infinite=True, help="seconds; .inf: no limit")

    assert build(Limits, {"budget": float("inf")}).budget == float("inf")
    with pytest.raises(ConfigError, match="budget: nan is not allowed"):
        build(Limits, {"budget": float("nan")})


def test_the_largest_64_bit_seed_trains(tmp_path, one_thread):
    """The bound is what the consumers take: torch's and numpy's generators accept any 64-bit seed."""
    from tests.conftest import cyclic_sequences, synthetic_trainer

    seed = 2**63 - 1
    assert load_config(None, [f"train.seeds=[{seed}]"]).train.seeds == [seed]
    trainer = synthetic_trainer(tmp_path, cyclic_sequences(20, 10), 10, "train.epochs=1", seed=seed)
    assert trainer.fit(seed).epochs == 1


def test_bad_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("dataset:\n  name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml, line \d+: not valid YAML"):
        load_config(path)


def test_a_key_given_twice_is_an_error_not_the_last_one_silently(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("train:\n  lr: 0.1\n  epochs: 3\n  lr: 0.2\n")
    with pytest.raises(
        ConfigError, match=r"dup.yaml, line 4: .*key 'lr' appears twice in one mapping \(first on line 2\)"
    ):
        load_config(path)


def test_unknown_key_in_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("embed:\n  modle: x\n")
    with pytest.raises(ConfigError, match="embed.modle: unknown key \\(did you mean 'model'\\?\\)"):
        load_config(path)


def test_digest_changes_with_settings_but_not_with_run_section():
    a, b = load_config(), load_config(None, ["run.root=elsewhere"])
    c = load_config(None, ["seq.hidden_size=32"])
    assert a.digest() == b.digest() != c.digest()


def test_cross_key_checks():
    with pytest.raises(ConfigError, match=r"embed.pca_dim \(32\) must equal seq.hidden_size \(256\)"):
        load_config(None, ["embed.pca_dim=32"])
    assert load_config(None, ["embed.pca_dim=32", "seq.variant=plain"]).embed.pca_dim == 32
    with pytest.raises(ConfigError, match=r"seq.num_heads \(3\) must divide seq.hidden_size \(256\)"):
        load_config(None, ["seq.num_heads=3"])
    with pytest.raises(ConfigError, match=r"seq.distill.k \(20\) exceeds embed.similar_users \(10\)"):
        load_config(None, ["seq.distill.k=20"])
    with pytest.raises(ConfigError, match=r"dataset.metadata.category_pattern: ',\(' is not a regular expression"):
        load_config(None, ["dataset.metadata.category_pattern=',('"])
    with pytest.raises(ConfigError, match=r"eval.ks: \[5, 20\] must include 10"):
        load_config(None, ["eval.ks=[5,20]"])
    fitted = ["seq.readouts.mode=fitted"]
    with pytest.raises(
        ConfigError,
        match="seq.readouts.mode: readouts fitted after training read each training position, which the bert4rec",
    ):
        load_config(None, fitted + ["seq.backbone=bert4rec"])
    assert load_config(None, fitted + ["seq.backbone=gru4rec"]).seq.readouts.mode == "fitted"


def test_every_setting_is_keyed_and_explained():
    """A stage key changes with any of its settings, and every setting carries help text for the reference."""
    import dataclasses

    from esrgraph.config import Config

    cfg = load_config()
    assert load_config(None, ["train.floor_margin=0.2"]).digest() != cfg.digest()

    import typing

    def resolved(cls, prefix):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                yield from resolved(hints[f.name], prefix + f.name + ".")
            else:
                yield prefix + f.name, f.metadata.get("help", "")

    missing = [key for key, text in resolved(Config, "") if not text]
    assert not missing, missing


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")), ids=lambda p: p.name
)
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert cfg.dataset.name and cfg.seq.hidden_size == cfg.embed.pca_dim


def test_the_configuration_reference_is_current():
    """docs/configuration.md is what `esr show-config --doc` generates; regenerate it when a setting changes."""
    from esrgraph.config_doc import reference

    path = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
    assert path.read_text() == reference(), "run: esr show-config --doc > docs/configuration.md"
    for key in ("train.loss", "seq.readouts.mode", "dataset.metadata.fields.title", "gnn.tau"):
        assert f"| `{key}` |" in reference()


def test_a_setting_at_its_default_changes_no_key():
    """Keys leave defaults out: a setting added later and left at its default keeps earlier runs current."""
    from dataclasses import dataclass

    from esrgraph.config_schema import field, key_dict

    @dataclass
    class Before:
        lr: float = field(1e-3)

    @dataclass
    class After:
        lr: float = field(1e-3)
        added: int = field(4)

    assert key_dict(Before(lr=5e-4)) == key_dict(After(lr=5e-4)) == {"lr": 5e-4}
    assert key_dict(After(lr=5e-4, added=5)) == {"lr": 5e-4, "added": 5}
    default, changed = load_config(None), load_config(None, ["seq.view_loss=0.5"])
    assert default.digest() != changed.digest() and "view_loss" not in str(key_dict(default.seq))


def test_when_training_saves_is_not_part_of_what_it_trains():
    """train.checkpoint_minutes changes no stage key: a run goes on from its checkpoints when it changes."""
    from esrgraph.config_schema import key_dict
    from esrgraph.stages.seq import section

    default, often = load_config(None), load_config(None, ["train.checkpoint_minutes=5"])
    assert key_dict(section(default)) == key_dict(section(often))
    assert key_dict(section(load_config(None, ["train.lr=0.002"]))) != key_dict(section(default))
