"""``esr ablate``: variants × seeds on one dataset, one table, one plot.

Variants: SASRec, LLM-ESR, LLM-ESR + graph (each fusion), LLM-ESR + heads
(head users skip self-distillation; controls where they do not, where
the group weights θ are learned, where the heads are a readout that
leaves the shared model to train as LLM-ESR, with θ fixed or chosen per
group on validation, and where they are fitted after LLM-ESR has trained,
with one readout for every user as their control), LLM-ESR trained with a
full softmax (the loss those heads are fitted with) and LLM-ESR + graph + heads. The last takes
the fusion with the best *validation* NDCG@10 among the graph variants:
nothing is chosen on test data. All variants share one run directory, so the
dataset, embedding, graph and pretraining stages run once; each variant has
its own ``seq-<variant>`` and ``eval-<variant>`` stages.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .artifacts import atomic_write_bytes, read_manifest, write_json
from .config import Config, load_config
from .errors import ConfigError, EsrError
from .eval import stage as eval_stage
from .runs import Run
from .seq import stage as seq_stage

log = logging.getLogger(__name__)

BASELINE = "llmesr"
COMBINED = "llmesr+graph+heads"
FUSIONS = ("init", "gate", "view")


@dataclass
class Variant:
    name: str
    overrides: list[str]
    description: str


READOUT = ["seq.variant=llmesr", "seq.heads.enabled=true", "seq.heads.shared_gradient=false",
           "seq.heads.distill_head_users=true"]

AFTER = ["seq.variant=llmesr", "seq.heads.enabled=true", "seq.heads.fit=after", "seq.heads.distill_head_users=true",
         "seq.heads.tune_theta=true", "seq.heads.tune_on=both_protocols"]
ONE_GROUP = 10**9  # a tail threshold no training sequence reaches: every user in the tail group

FIXED_VARIANTS = [
    Variant("sasrec", ["seq.variant=plain"], "SASRec, id embeddings only"),
    Variant("llmesr", ["seq.variant=llmesr"], "LLM-ESR"),
    *[Variant(f"llmesr+graph-{f}", ["seq.variant=llmesr", f"seq.fusion={f}"], f"LLM-ESR + graph ({f})") for f in FUSIONS],
    Variant("llmesr+heads", ["seq.variant=llmesr", "seq.heads.enabled=true"], "LLM-ESR + head/tail heads"),
    # tests the hypothesis behind the default that head users skip self-distillation
    Variant("llmesr+heads-distill-all", ["seq.variant=llmesr", "seq.heads.enabled=true", "seq.heads.distill_head_users=true"],
            "LLM-ESR + head/tail heads, head users distilled too"),
    # the group weights learned from the mixed score instead of fixed at 0.5
    Variant("llmesr+heads-learned-theta", ["seq.variant=llmesr", "seq.heads.enabled=true", "seq.heads.learn_theta=true"],
            "LLM-ESR + head/tail heads, θ learned"),
    # the heads as a readout: the shared model trains exactly as LLM-ESR (every user distilled)
    Variant("llmesr+heads-readout", READOUT, "LLM-ESR + head/tail heads trained as a readout over LLM-ESR"),
    # the same, each group's θ chosen on validation (0 switches a group's head off). No early
    # stop before epoch 30: the readout lost a seed to a plateau at epoch 10-20 on amazon-scientific,
    # and no LLM-ESR seed stopped before epoch 30, so the baseline would have trained the same.
    Variant("llmesr+heads-readout-tuned", READOUT + ["seq.heads.tune_theta=true", "train.min_epochs=30"],
            "LLM-ESR + head/tail heads as a readout, θ per group chosen on validation"),
    # LLM-ESR trained as it is, draw for draw, then one head per group fitted on the frozen model;
    # θ per group chosen on validation where it helps under both protocols
    Variant("llmesr+heads-after", AFTER, "LLM-ESR + head/tail heads fitted after training"),
    # the control: the same readout fitted on every user at once (one group), to tell the
    # readout's effect from that of splitting users into head and tail
    Variant("llmesr+readout-after", AFTER + [f"seq.heads.tail_max_length={ONE_GROUP}"],
            "LLM-ESR + one readout for every user fitted after training (control of llmesr+heads-after)"),
    # the control of the fitting loss: LLM-ESR trained with the full softmax the heads are fitted with
    Variant("llmesr-ce", ["seq.variant=llmesr", "train.loss=ce"], "LLM-ESR trained with a full softmax (train.loss=ce)"),
    # and the heads over that model: do they still help once the shared model has the softmax?
    Variant("llmesr-ce+heads-after", AFTER + ["train.loss=ce"],
            "LLM-ESR trained with a full softmax + head/tail heads fitted after training"),
]


@dataclass
class Outcome:
    variant: Variant
    metrics: dict
    valid: list[float] = field(default_factory=list)  # best validation NDCG@10 per seed


def run_ablation(config: str | None, overrides: list[str], seeds: list[int], only: list[str] | None = None) -> tuple[Path, dict]:
    """Train and evaluate the selected variants (all by default); returns the ablation folder and the results.

    The table holds every variant with up-to-date results in the run directory,
    so variants run in separate calls (``--only``) add up to one table.
    """
    known = [v.name for v in FIXED_VARIANTS] + [COMBINED]
    unknown = [name for name in only or [] if name not in known]
    if unknown:
        raise EsrError(f"--only: unknown variant {', '.join(unknown)}; choose from {', '.join(known)}")
    selected = set(only or known)
    base = load_config(config, list(overrides) + [f"train.seeds={seeds}"])
    shared = base.run.name or f"{base.dataset.name}-ablation-{base.digest()[:10]}"
    # a combined variant that cannot be chosen fails before any training
    if COMBINED in selected and not any(_is_graph(n) for n in selected) and not any(
            _outcome(config, overrides, seeds, shared, v, train=False) for v in FIXED_VARIANTS if _is_graph(v.name)):
        raise EsrError(f"{COMBINED} takes the graph fusion with the best validation NDCG@10: "
                       "run at least one llmesr+graph-* variant first or in the same call")
    _check_variants(config, overrides, seeds, [v for v in FIXED_VARIANTS if v.name in selected])
    trained = {v.name: _outcome(config, overrides, seeds, shared, v, train=True) for v in FIXED_VARIANTS if v.name in selected}
    combined = _combined_variant(_gather(config, overrides, seeds, shared, trained))
    if combined is not None:  # trained here when selected, else its results of an earlier call, if any
        trained[COMBINED] = _outcome(config, overrides, seeds, shared, combined, train=COMBINED in selected)
    # the others' results are read after all training, so those another call finished meanwhile join the table
    outcomes = _gather(config, overrides, seeds, shared, trained)
    if trained.get(COMBINED):
        outcomes[COMBINED] = trained[COMBINED]
    folder = Path(base.run.root) / shared / "ablation"
    results = _write(folder, base, outcomes, seeds)
    return folder, results


def _gather(config, overrides, seeds, shared: str, trained: dict[str, Outcome]) -> dict[str, Outcome]:
    """The fixed variants' outcomes: this call's, or those up to date in the run directory."""
    outcomes: dict[str, Outcome] = {}
    for variant in FIXED_VARIANTS:
        outcome = trained.get(variant.name) or _outcome(config, overrides, seeds, shared, variant, train=False)
        if outcome:
            outcomes[variant.name] = outcome
    return outcomes


def _combined_variant(outcomes: dict[str, Outcome]) -> Variant | None:
    """Graph + heads with the fusion of the best mean validation NDCG@10, if any graph variant ran."""
    graph_runs = [o for name, o in outcomes.items() if _is_graph(name)]
    if not graph_runs:
        return None
    fusion = max(graph_runs, key=lambda o: np.mean(o.valid)).variant.name.rsplit("-", 1)[1]
    return Variant(COMBINED, ["seq.variant=llmesr", f"seq.fusion={fusion}", "seq.heads.enabled=true"],
                   f"LLM-ESR + graph ({fusion}, best on validation) + heads")


def _check_variants(config, overrides, seeds, variants: list[Variant]) -> None:
    """Every selected variant's settings are valid with the given overrides, before hours of training."""
    for variant in variants:
        try:
            load_config(config, list(overrides) + variant.overrides + [f"train.seeds={seeds}"])
        except ConfigError as exc:
            raise ConfigError(f"variant {variant.name}: {exc}; leave it out with --only") from None


def _is_graph(name: str) -> bool:
    return name.startswith("llmesr+graph-")


def _outcome(config, overrides, seeds, shared: str, variant: Variant, train: bool) -> Outcome | None:
    """Train and evaluate the variant (``train``), or take its up-to-date results from an earlier call, if any."""
    cfg = load_config(config, list(overrides) + variant.overrides + [f"train.seeds={seeds}", f"run.name={shared}"])
    run = Run(cfg, variant=variant.name)
    if train:
        log.info("ablation: %s", variant.description)
        _, metrics = eval_stage.evaluate(run, resume="auto")  # an interrupted variant continues from its checkpoints
    else:
        metrics = eval_stage.finished(run)
        if metrics is None:
            return None
        log.info("ablation: %s, results of an earlier call", variant.description)
    manifest = read_manifest(run.stage_dir(seq_stage.STAGE)) or {}
    valid = [s["best_valid_NDCG@10"] for s in manifest.get("seeds", {}).values()]
    return Outcome(variant, metrics, valid)


def _write(folder: Path, base: Config, outcomes: dict[str, Outcome], seeds: list[int]) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    results = {
        "dataset": base.dataset.name,
        "seeds": seeds,
        "selection": "the graph+heads variant uses the fusion with the best mean validation NDCG@10",
        "variants": {name: {"description": o.variant.description, "overrides": o.variant.overrides,
                            "valid_NDCG@10": o.valid, "summary": o.metrics["summary"]} for name, o in outcomes.items()},
    }
    if BASELINE in outcomes and len(outcomes) > 1:
        results["gains_over_llmesr"] = gains(outcomes)
    write_json(folder / "ablation.json", results)
    atomic_write_bytes(folder / "ablation.md", (markdown(results, base.eval.ks) + "\n").encode())
    if "gains_over_llmesr" in results:
        plot_gains(results, folder / "ablation.png")
    return results


GAIN_GROUPS = ("overall", "tail_users", "tail_items")
GAIN_METRIC = "NDCG@10"


def gains(outcomes: dict[str, Outcome]) -> dict:
    """Relative NDCG@10 change over LLM-ESR, per protocol and group, for every other variant."""
    base = outcomes[BASELINE].metrics["summary"]
    out = {}
    for name, o in outcomes.items():
        if name == BASELINE:
            continue
        summary = o.metrics["summary"]
        out[name] = {p: {g: _relative(summary[p][g][GAIN_METRIC]["mean"], base[p][g][GAIN_METRIC]["mean"])
                         for g in GAIN_GROUPS} for p in summary}
    return out


def _relative(value: float | None, base: float | None) -> float | None:
    return (value - base) / base if value is not None and base else None


def markdown(results: dict, ks) -> str:
    seeds = len(results["seeds"])
    lines = [f"# Ablation on {results['dataset']} ({seeds} seeds, mean ± std, test split)", ""]
    names = [f"NDCG@{k}" for k in ks] + [f"HR@{k}" for k in ks]
    for protocol in ("sampled", "full"):
        lines += [f"## {protocol} protocol", "", "| variant | group | " + " | ".join(names) + " | valid NDCG@10 |",
                  "|" + "---|" * (len(names) + 3)]
        for name, v in results["variants"].items():
            if protocol not in v["summary"]:
                continue
            valid = f"{np.mean(v['valid_NDCG@10']):.4f}" if v["valid_NDCG@10"] else "–"
            for group in ("overall", "tail_users", "head_users", "tail_items", "head_items"):
                m = v["summary"][protocol][group]
                cells = ["–" if m[n]["mean"] is None else f"{m[n]['mean']:.4f} ± {m[n]['std']:.4f}" for n in names]
                lines.append(f"| {name} | {group} | " + " | ".join(cells) + f" | {valid if group == 'overall' else ''} |")
        lines.append("")
    if "gains_over_llmesr" in results:
        lines += ["## NDCG@10 change over LLM-ESR", "", "| variant | protocol | overall | tail users | tail items |",
                  "|---|---|---|---|---|"]
        for name, per in results["gains_over_llmesr"].items():
            for protocol, g in per.items():
                lines.append(f"| {name} | {protocol} | " + " | ".join("–" if g[k] is None else f"{g[k]:+.1%}" for k in GAIN_GROUPS) + " |")
    return "\n".join(lines)


def plot_gains(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per = results["gains_over_llmesr"]
    names = list(per)
    protocols = [p for p in ("sampled", "full") if p in per[names[0]]]
    fig, axes = plt.subplots(1, len(protocols), figsize=(6 * len(protocols), 4), squeeze=False)
    x = np.arange(len(names))
    for ax, protocol in zip(axes[0], protocols):
        for i, (group, label) in enumerate((("tail_users", "tail users"), ("tail_items", "tail items"))):
            ax.bar(x + (i - 0.5) * 0.38, [100 * (per[n][protocol][group] or 0.0) for n in names], 0.38, label=label)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(f"{GAIN_METRIC} change over LLM-ESR (%)")
        ax.set_title(f"{results['dataset']}, {protocol} protocol")
        ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
