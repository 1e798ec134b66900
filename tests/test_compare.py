"""`esr compare`: finished runs pooled by seed, each group's change over a baseline, and what it refuses."""

import json

import pytest

from cli.main import main
from esrgraph.eval.compare import comparison, pool
from esrgraph.eval.metrics import GROUPS


def write_metrics(path, seeds: dict[int, float], dataset="tiny", ranked=50, tail_items=None):
    """A metrics.json as esr evaluate writes it: NDCG@10 per seed, the same in every group but tail items."""
    per_seed = {}
    for seed, value in seeds.items():
        groups = {g: {"users": 10, "NDCG@10": value, "HR@10": 2 * value} for g in GROUPS}
        groups["tail_items"]["NDCG@10"] = tail_items[seed] if tail_items else value
        per_seed[str(seed)] = {"full": groups, "sampled": groups}
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"dataset": dataset, "model": path.parent.name, "split": "test"}
    if ranked is not None:  # files written before eval.users existed have no count: every user was ranked
        body["users"] = {"ranked": ranked}
    path.write_text(json.dumps(body | {"per_seed": per_seed}))
    return path


def test_sides_pool_their_seeds_and_each_group_changes_by_the_means_and_by_paired_seeds(tmp_path):
    mine = [
        write_metrics(tmp_path / "a1" / "eval" / "metrics.json", {1: 0.12}, tail_items={1: 0.05}),
        write_metrics(tmp_path / "a2" / "metrics.json", {2: 0.14}, tail_items={2: 0.03}),
    ]
    base = write_metrics(tmp_path / "b.json", {1: 0.10, 2: 0.10}, ranked=None, tail_items={1: 0.04, 2: 0.04})
    result = comparison(pool([tmp_path / "a1", tmp_path / "a2"]), pool([base]))
    assert result["sides"]["model"]["files"] == [str(mine[0]), str(mine[1])]
    assert result["sides"]["model"]["seeds"] == ["1", "2"]
    overall = result["sides"]["model"]["summary"]["full"]["overall"]
    assert overall["mean"] == pytest.approx(0.13) and overall["std"] == pytest.approx(0.0141421, rel=1e-5)
    full = result["changes"]["full"]
    assert full["overall"]["change"] == pytest.approx(0.30)
    assert full["overall"]["seed_mean"] == pytest.approx(0.30)  # +20% and +40%
    assert full["overall"]["seed_std"] == pytest.approx(0.1414214, rel=1e-5)
    assert full["overall"]["inside_spread"] is False  # 0.03 apart, std 0.014
    assert full["tail_items"]["change"] == pytest.approx(0.0)
    assert full["tail_items"]["seed_mean"] == pytest.approx(0.0)  # +25% and -25%
    assert full["tail_items"]["inside_spread"] is True
    assert result["changes"]["sampled"] == full


def test_the_command_prints_both_sides_and_the_changes_and_writes_json(tmp_path, capsys):
    for seed, value in ((1, 0.12), (2, 0.14)):
        write_metrics(tmp_path / f"mine-s{seed}" / "eval" / "metrics.json", {seed: value})
        write_metrics(tmp_path / f"base-s{seed}" / "eval" / "metrics.json", {seed: 0.10})
    paths = [str(tmp_path / name) for name in ("mine-s1", "mine-s2", "vs", "base-s1", "base-s2")]
    paths[2] = "vs"
    assert main(["compare", *paths, "--json", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "| full | model | 0.1300 ± 0.0141 | 0.1300 ± 0.0141 |" in out
    assert "| full | baseline | 0.1000 ± 0.0000 |" in out
    assert "| full | change | +30.0% | +30.0% |" in out
    assert "| full | per seed | +30.0% ± 14.1% |" in out
    saved = json.loads((tmp_path / "c.json").read_text())
    assert saved["changes"]["full"]["head_users"]["change"] == pytest.approx(0.30)
    assert main(["compare", paths[0], "vs", paths[3], "--metric", "HR@10"]) == 0
    assert "| full | model | 0.2400 |" in capsys.readouterr().out  # one seed: no ± and no per-seed row


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: ["compare", p["a"], p["b"]], "one 'vs' between two non-empty lists"),
        (lambda p: ["compare", p["a"], "vs"], "one 'vs' between two non-empty lists"),
        (lambda p: ["compare", p["a"], p["a"], "vs", p["b"]], "seed 1 is also in"),
        (lambda p: ["compare", p["a"], "vs", p["other_data"]], "compare like with like"),
        (lambda p: ["compare", p["a"], p["other_data"], "vs", p["b"]], "dataset 'other'"),
        (lambda p: ["compare", p["a"], "vs", p["fewer_users"]], "set the same eval.users"),
        (lambda p: ["compare", p["a"], "vs", p["empty"]], "holds no metrics.json"),
        (lambda p: ["compare", p["a"], "vs", p["broken"]], "is not the metrics esr evaluate writes"),
        (lambda p: ["compare", p["a"], "vs", p["b"], "--metric", "NDCG@7"], "has no metric 'NDCG@7'"),
        (lambda p: ["compare", p["a"], "vs", p["no_hr"], "--metric", "HR@10"], "no_hr.json: has no metric 'HR@10'"),
    ],
)
def test_what_cannot_be_compared_stops_with_the_file_and_the_reason(tmp_path, capsys, change, message):
    paths = {
        "a": write_metrics(tmp_path / "a.json", {1: 0.1}),
        "b": write_metrics(tmp_path / "b.json", {1: 0.1}),
        "other_data": write_metrics(tmp_path / "o.json", {2: 0.1}, dataset="other"),
        "fewer_users": write_metrics(tmp_path / "f.json", {1: 0.1}, ranked=20),
        "empty": tmp_path / "empty",
        "broken": tmp_path / "broken.json",
        "no_hr": write_metrics(tmp_path / "no_hr.json", {1: 0.1}),
    }
    no_hr = json.loads(paths["no_hr"].read_text())  # evaluated with other cut-offs: NDCG@10 only
    for protocols in no_hr["per_seed"].values():
        for groups in protocols.values():
            for values in groups.values():
                values.pop("HR@10")
    paths["no_hr"].write_text(json.dumps(no_hr))
    paths["empty"].mkdir()
    paths["broken"].write_text('{"dataset": "tiny"}')
    assert main(change({k: str(v) for k, v in paths.items()})) != 0
    assert message in capsys.readouterr().err
