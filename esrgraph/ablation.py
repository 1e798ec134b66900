"""``esr ablate``: variants × seeds on one dataset, one table with the popularity floor, one plot.

Variants: the item-id-only models (SASRec; BSARec over its window of
``seq.max_length``), SASRec with its ids started at the text's PCA, LLM-ESR,
the package's default model, the default with graph fusion (each fusion) and
with user-group readouts (each mode, and the one-readout control), and the
full model: the fusion and the readout mode with the best *validation*
NDCG@10, so nothing is chosen on test data. Every variant trains with the
config's objective and budget (epochs, patience, the popularity-floor rule),
so the comparison is fair. Gains are measured against the best id-only model
on validation. All variants share one run directory: the dataset, embedding,
graph and pretraining stages run once; each variant has its own
``seq-<variant>`` and ``eval-<variant>`` stages."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .artifacts import atomic_write, atomic_write_bytes, read_json, read_manifest, write_json
from .config import Config, load_config
from .errors import ConfigError, EsrError
from .eval.compare import change_cell, changes
from .eval.metrics import GROUPS, VALID_METRIC
from .pipeline import current, ensure
from .runs import Run
from .seq.config import SeqConfig

log = logging.getLogger(__name__)

DEFAULT = SeqConfig().variant  # the package's default model, which the extensions build on
COMBINED = "full"
FUSIONS = ("init", "view")
READOUT_MODES = ("joint", "fitted")
ID_ONLY = ("sasrec", "bsarec")  # the gains are measured against the best of these on validation
# the variants share one embed stage: user texts are encoded for those that self-distil
SHARED_STAGES = ["embed.users=text"]
BARE = [f"seq.variant={DEFAULT}", "seq.fusion=none", "seq.readouts.mode=none", "seq.readouts.groups=head_tail"]


@dataclass
class Variant:
    name: str
    overrides: list[str]
    description: str
    shared_from: str | None = None  # fitted readouts: the variant whose trained shared model they start from


FIXED_VARIANTS = [
    Variant("sasrec", BARE + ["seq.variant=plain"], "SASRec, item ids only"),
    Variant("bsarec", BARE + ["seq.variant=plain", "seq.backbone=bsarec"], "BSARec, item ids only"),
    Variant("text-init", BARE + ["seq.variant=text-init"], "SASRec, item ids started at the LLM embeddings' PCA"),
    Variant("llmesr", BARE + ["seq.variant=llmesr"], "LLM-ESR"),
    Variant(DEFAULT, BARE, f"the default model ({DEFAULT})"),
    *[Variant(f"{DEFAULT}+graph-{f}", BARE + [f"seq.fusion={f}"], f"{DEFAULT} + graph ({f})") for f in FUSIONS],
    *[
        Variant(
            f"{DEFAULT}+readouts-{m}",
            BARE + [f"seq.readouts.mode={m}"],
            f"{DEFAULT} + user-group readouts ({m})",
            DEFAULT if m == "fitted" else None,
        )
        for m in READOUT_MODES
    ],
    # the control: one readout for every user, to tell the readout's effect from that of splitting users
    Variant(
        f"{DEFAULT}+readouts-fitted-all",
        BARE + ["seq.readouts.mode=fitted", "seq.readouts.groups=all"],
        f"{DEFAULT} + one readout for every user, fitted (control of {DEFAULT}+readouts-fitted)",
        DEFAULT,
    ),
]
FIXED_VARIANTS = list({v.name: v for v in reversed(FIXED_VARIANTS)}.values())[::-1]  # LLM-ESR once if it is the default


@dataclass
class Outcome:
    variant: Variant
    metrics: dict
    valid: list[float] = field(default_factory=list)  # validation NDCG@10 per seed (after readouts, where fitted)


def run_ablation(
    config: str | None, overrides: list[str], seeds: list[int], only: list[str] | None = None
) -> tuple[Path, dict]:
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
    Run(load_config(config, list(overrides) + [f"run.name={shared}"])).remove_abandoned()
    setting = (config, overrides, seeds, shared)
    _check_variants(setting, [v for v in FIXED_VARIANTS if v.name in selected])
    trained = {v.name: _outcome(setting, v, train=True) for v in FIXED_VARIANTS if v.name in selected}
    outcomes = _gather(setting, trained)
    combined = _combined_variant(outcomes)
    if COMBINED in selected and combined is None:
        raise EsrError(
            f"{COMBINED} takes the fusion and the readout mode with the best validation NDCG@10: "
            f"run the {DEFAULT}+graph-* and {DEFAULT}+readouts-* variants first or in the same call"
        )
    if combined is not None:  # trained here when selected, else its results of an earlier call, if any
        trained[COMBINED] = _outcome(setting, combined, train=COMBINED in selected)
    # the others' results are read after all training, so those another call finished meanwhile join the table
    outcomes = _gather(setting, trained)
    if trained.get(COMBINED):
        outcomes[COMBINED] = trained[COMBINED]
    folder = Path(base.run.root) / shared / "ablation"
    return folder, _write(folder, base, outcomes, seeds)


def _gather(setting, trained: dict[str, Outcome]) -> dict[str, Outcome]:
    """The fixed variants' outcomes: this call's, or those up to date in the run directory."""
    outcomes: dict[str, Outcome] = {}
    for variant in FIXED_VARIANTS:
        outcome = trained.get(variant.name) or _outcome(setting, variant, train=False)
        if outcome:
            outcomes[variant.name] = outcome
    return outcomes


def _best(outcomes: dict[str, Outcome], prefix: str) -> Outcome | None:
    """The variant named ``prefix…`` with the best mean validation NDCG@10, if any ran."""
    runs = [o for name, o in outcomes.items() if name.startswith(prefix) and not name.endswith("-all")]
    return max(runs, key=lambda o: np.mean(o.valid)) if runs else None


def _combined_variant(outcomes: dict[str, Outcome]) -> Variant | None:
    """Graph + readouts with the fusion and the mode of the best mean validation NDCG@10."""
    graph, readouts = _best(outcomes, f"{DEFAULT}+graph-"), _best(outcomes, f"{DEFAULT}+readouts-")
    if graph is None or readouts is None:
        return None
    fusion, mode = graph.variant.name.rsplit("-", 1)[1], readouts.variant.name.rsplit("-", 1)[1]
    return Variant(
        COMBINED,
        BARE + [f"seq.fusion={fusion}", f"seq.readouts.mode={mode}"],
        f"{DEFAULT} + graph ({fusion}) + readouts ({mode}), each best on validation",
        graph.variant.name if mode == "fitted" else None,
    )


def _check_variants(setting, variants: list[Variant]) -> None:
    """Every selected variant's settings are valid with the given overrides, before hours of training."""
    config, overrides, seeds, _ = setting
    for variant in variants:
        try:
            load_config(config, list(overrides) + variant.overrides + [f"train.seeds={seeds}"])
        except ConfigError as exc:
            raise ConfigError(f"variant {variant.name}: {exc}; leave it out with --only") from None


def _outcome(setting, variant: Variant, train: bool) -> Outcome | None:
    """Train and evaluate the variant (``train``), or take its up-to-date results from an earlier call, if any."""
    cfg = _variant_config(setting, variant, _shared_model(setting, variant))
    run = Run(cfg, variant=variant.name)
    if train:
        log.info("ablation: %s", variant.description)
        folder = ensure(run, "eval", resume="auto")  # an interrupted variant continues from its checkpoints
    else:
        folder = current(run, "eval")
        if folder is None:
            return None
        log.info("ablation: %s, results of an earlier call", variant.description)
    seeds_run = (read_manifest(run.stage_dir("seq")) or {}).get("seeds", {})
    valid = [_finished_valid(s) for s in seeds_run.values()]
    return Outcome(variant, read_json(folder / "metrics.json"), valid)


def _variant_config(setting, variant: Variant, extra: tuple[str, ...] | list[str] = ()) -> Config:
    """The variant's config within the ablation's run directory, sharing its data and text stages."""
    config, overrides, seeds, shared = setting
    common = list(overrides) + [f"train.seeds={seeds}", f"run.name={shared}"] + SHARED_STAGES
    return load_config(config, common + variant.overrides + list(extra))


def _finished_valid(summary: dict) -> float:
    """A seed's validation NDCG@10 as finished (after readouts or a popularity correction, where fitted)."""
    for key in ("valid_NDCG@10_finished", "valid_NDCG@10_with_readouts", "best_valid_NDCG@10"):
        if key in summary:
            return summary[key]
    raise KeyError("best_valid_NDCG@10")


def _shared_model(setting, variant: Variant) -> list[str]:
    """The override declaring the shared model a fitted-readouts variant starts from: the trained model of
    the variant it extends, when that one is up to date (else it trains its own, the same model)."""
    if variant.shared_from is None:
        return []
    donor = next((v for v in FIXED_VARIANTS if v.name == variant.shared_from), None)
    if donor is None:
        return []
    folder = current(Run(_variant_config(setting, donor), variant=donor.name), "seq")
    return [f"seq.readouts.shared_model={folder}"] if folder is not None else []


def _write(folder: Path, base: Config, outcomes: dict[str, Outcome], seeds: list[int]) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    floor = next((o.metrics["popularity"] for o in outcomes.values() if "popularity" in o.metrics), None)
    results = {
        "dataset": base.dataset.name,
        "seeds": seeds,
        "objective": next((o.metrics.get("objective") for o in outcomes.values()), None) or base.train.loss,
        "selection": f"{COMBINED} uses the fusion and the readout mode with the best mean validation NDCG@10",
        "popularity": floor,
        "variants": {
            name: {
                "description": o.variant.description,
                "overrides": o.variant.overrides,
                "valid_NDCG@10": o.valid,
                "summary": o.metrics["summary"],
                "per_seed": o.metrics.get("per_seed", {}),
                "cold_items": o.metrics.get("cold_items"),
            }
            for name, o in outcomes.items()
        },
    }
    baseline = best_id_only(outcomes)
    if baseline is not None and len(outcomes) > 1:
        results["baseline"] = baseline
        results["gains"] = gains(results["variants"], baseline)
    write_json(folder / "ablation.json", results)
    atomic_write_bytes(folder / "ablation.md", (markdown(results, base.eval.ks) + "\n").encode())
    if "gains" in results:
        plot_gains(results, folder / "ablation.png")
    return results


def best_id_only(outcomes: dict[str, Outcome]) -> str | None:
    """The id-only variant with the best mean validation NDCG@10 (the one the others are measured against)."""
    present = [name for name in ID_ONLY if name in outcomes and outcomes[name].valid]
    return max(present, key=lambda name: np.mean(outcomes[name].valid)) if present else None


def gains(variants: dict[str, dict], baseline: str) -> dict:
    """Each variant's relative NDCG@10 change over ``baseline`` per protocol and group (:func:`changes`)."""
    return {name: changes(v, variants[baseline]) for name, v in variants.items() if name != baseline}


def markdown(results: dict, ks) -> str:
    seeds = len(results["seeds"])
    lines = [
        f"# Ablation on {results['dataset']} ({seeds} seeds, mean ± std, test split, "
        f"objective {results.get('objective', 'bce')})",
        "",
    ]
    names = [f"NDCG@{k}" for k in ks] + [f"HR@{k}" for k in ks]
    floor = results.get("popularity")
    for protocol in ("sampled", "full"):
        lines += [
            f"## {protocol} protocol",
            "",
            "| variant | group | " + " | ".join(names) + " | valid NDCG@10 |",
            "|" + "---|" * (len(names) + 3),
        ]
        if floor is not None:
            for group in GROUPS:
                cells = [
                    "–" if floor[protocol][group][n] is None else f"{floor[protocol][group][n]:.4f}" for n in names
                ]
                lines.append(f"| popularity (floor) | {group} | " + " | ".join(cells) + " |  |")
        for name, v in results["variants"].items():
            if protocol not in v["summary"]:
                continue
            valid = f"{np.mean(v['valid_NDCG@10']):.4f}" if v["valid_NDCG@10"] else "–"
            for group in GROUPS:
                m = v["summary"][protocol][group]
                cells = ["–" if m[n]["mean"] is None else f"{m[n]['mean']:.4f} ± {m[n]['std']:.4f}" for n in names]
                lines.append(
                    f"| {name} | {group} | " + " | ".join(cells) + f" | {valid if group == 'overall' else ''} |"
                )
        lines.append("")
    lines += _cold_section(results["variants"])
    if "gains" in results:
        lines += [
            f"## NDCG@10 change over {results['baseline']}, the best id-only model on validation "
            "(per-seed changes: mean ± std)",
            "",
            "| variant | protocol | overall | tail users | head users | tail items | head items |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, per in results["gains"].items():
            for protocol, g in per.items():
                lines.append(f"| {name} | {protocol} | " + " | ".join(change_cell(g[k]) for k in GROUPS) + " |")
    return "\n".join(lines)


def _cold_section(variants: dict) -> list[str]:
    """The cold-item protocol's table, where the variants were run with held-out items."""
    cold = {name: v["cold_items"] for name, v in variants.items() if v.get("cold_items")}
    if not cold:
        return []
    first = next(iter(cold.values()))
    lines = [
        f"## Cold-item protocol ({first['queries']:,} held-out interactions, {first['cold_items']:,} cold items)",
        "",
        "| ranked | variant | HR@10 | NDCG@10 |",
        "|---|---|---|---|",
    ]
    for where in ("among_cold", "among_all"):
        label = where.replace("_", " ")
        for base in ("popularity", "random"):
            lines.append(
                f"| {label} | {base} | {first[base][where]['HR@10']:.4f} | {first[base][where]['NDCG@10']:.4f} |"
            )
        for name, c in cold.items():
            m = c["summary"][where]
            lines.append(
                f"| {label} | {name} | {m['HR@10']['mean']:.4f} ± {m['HR@10']['std']:.4f} "
                f"| {m['NDCG@10']['mean']:.4f} ± {m['NDCG@10']['std']:.4f} |"
            )
    return lines + [""]


def plot_gains(results: dict, path: Path) -> None:
    """Per-seed NDCG@10 change over the baseline for tail users and tail items: bars at the mean, ± one std."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per = results["gains"]
    names = list(per)
    protocols = [p for p in ("sampled", "full") if p in per[names[0]]]
    fig, axes = plt.subplots(1, len(protocols), figsize=(6 * len(protocols), 4), squeeze=False)
    x = np.arange(len(names))
    for ax, protocol in zip(axes[0], protocols):
        for i, (group, label) in enumerate((("tail_users", "tail users"), ("tail_items", "tail items"))):
            cells = [per[n][protocol][group] for n in names]
            means = [100 * (c["seed_mean"] if c["seed_mean"] is not None else (c["change"] or 0.0)) for c in cells]
            spread = [100 * c["seed_std"] for c in cells]
            ax.bar(x + (i - 0.5) * 0.38, means, 0.38, yerr=spread, capsize=3, label=label)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{results['dataset']}, {protocol} protocol")
        ax.legend()
    axes[0][0].set_ylabel(f"{VALID_METRIC} vs {results['baseline']} (%), ± seed std")  # one label: no overlap
    fig.tight_layout()
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=120))
    plt.close(fig)
