"""``esr tune``: searching a recommender's settings on validation, with a stated budget.

A study samples settings from ``tune.space`` with Optuna's TPE sampler (seeded
by ``tune.seed``), trains the configured recommender with each for one seed
(``tune.train_seed``) exactly as ``esr train-seq`` does, and scores a trial by
its finished validation NDCG@10 (under ``train.valid_protocol``). Test data is
never read. Trials whose validation curve falls below the median of earlier
trials at the same epoch are stopped early (Optuna's median rule, from
``tune.prune_after`` epochs on); their best score so far counts.

Every model in a comparison gets the same budget: the same space and number
of trials. Trials share the run directory of the configuration, so the dataset
and embedding stages run once; each trial trains in its own folder. The study
is stored beside them (``tune/<study>/journal.log``): an interrupted ``esr
tune`` continues where it stopped, retrying the interrupted trial. Results:
``trials.json`` (each trial's settings, score, epochs and state) and
``best.yaml``, a config that extends the tuned one with the best settings.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from .artifacts import atomic_write_bytes, read_manifest, write_json
from .config import Config, load_config
from .config_schema import key_dict
from .errors import ConfigError, EsrError
from .eval.metrics import VALID_METRIC
from .pipeline import ensure
from .runs import Run
from .training.loop import EpochRecord

log = logging.getLogger(__name__)


@dataclass
class Study:
    name: str
    folder: Path
    trials: list[dict]
    best: dict | None


def run_study(config: str | None, overrides: list[str], trials: int | None = None, name: str | None = None) -> Study:
    """Run (or continue) the study of ``config``; returns its trials and best settings."""
    optuna = _optuna()
    base = load_config(config, overrides)
    space = base.tune.space
    if not space:
        raise ConfigError("tune.space: no setting to search; give at least one, e.g. tune.space.train.lr")
    _check_space(config, overrides, space)
    budget = trials or base.tune.trials
    name = name or f"{base.seq.backbone}-{base.seq.variant}-{_space_digest(base)[:8]}"
    Run(base).remove_abandoned()
    folder = Run(base).dir / "tune" / name
    folder.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(folder / "journal.log")))
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=base.tune.seed, n_startup_trials=base.tune.startup_trials),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=base.tune.startup_trials, n_warmup_steps=base.tune.prune_after
        ),
        load_if_exists=True,
    )
    _retry_interrupted(study, optuna)
    done = sum(t.state.is_finished() for t in study.trials)
    log.info("tune: study %s in %s, %d of %d trials done", name, folder, done, budget)
    objective = _Objective(config, overrides, base, name)
    while sum(t.state.is_finished() for t in study.trials) < budget:
        study.optimize(objective, n_trials=1, catch=())
    return _write(folder, study, base, config, overrides, optuna)


class _Objective:
    """One trial: the sampled settings on top of the base config, trained in its own folder of the run directory."""

    def __init__(self, config, overrides, base: Config, study: str):
        self.config, self.overrides, self.base, self.study = config, overrides, base, study

    def __call__(self, trial) -> float:
        import optuna

        settings = {key: _suggest(trial, key, spec) for key, spec in self.base.tune.space.items()}
        extra = [f"{key}={json.dumps(value)}" for key, value in settings.items()]
        extra.append(f"train.seeds=[{self.base.tune.train_seed}]")
        cfg = load_config(self.config, list(self.overrides) + extra)
        # named by its settings: a retried trial continues from the checkpoints of the interrupted one
        run = Run(cfg, variant=f"tune-{self.study}-{_digest(settings)[:8]}")
        log.info("tune: trial %d: %s", trial.number, ", ".join(f"{k}={v}" for k, v in settings.items()))
        best = {"score": -math.inf, "epochs": 0}

        def report(record: EpochRecord) -> None:
            score = max(record.scores.values())
            best["score"], best["epochs"] = max(best["score"], score), record.epoch
            trial.report(score, record.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"validation {VALID_METRIC} {score:.4f} at epoch {record.epoch}")

        try:
            folder = ensure(run, "seq", resume="auto", callbacks=(report,))
        except optuna.TrialPruned:
            trial.set_user_attr("epochs", best["epochs"])
            trial.set_user_attr("best_before_pruning", best["score"])
            shutil.rmtree(_checkpoints(run), ignore_errors=True)  # a pruned trial is never continued
            raise
        summary = (read_manifest(folder) or {})["seeds"][str(self.base.tune.train_seed)]
        trial.set_user_attr("epochs", summary["epochs"])
        trial.set_user_attr("best_epoch", summary["best_epoch"])
        return _finished_score(summary)


def _checkpoints(run: Run) -> Path:
    from .stages.seq import checkpoint_root

    return checkpoint_root(run)


def _digest(data) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _finished_score(summary: dict) -> float:
    for key in (f"valid_{VALID_METRIC}_finished", f"best_valid_{VALID_METRIC}"):
        if key in summary:
            return float(summary[key])
    raise EsrError(f"a trained seed without a validation score ({sorted(summary)})")


def _suggest(trial, key: str, spec):
    if spec.choices is not None:
        return trial.suggest_categorical(key, spec.choices)
    integer = isinstance(spec.low, int) and isinstance(spec.high, int) and not spec.log
    if integer:
        return trial.suggest_int(key, spec.low, spec.high)
    return trial.suggest_float(key, float(spec.low), float(spec.high), log=spec.log)


def _check_space(config, overrides, space) -> None:
    """Every searched key is a setting and every value of its range is allowed, before any training."""
    for key, spec in space.items():
        values = spec.choices if spec.choices is not None else [spec.low, spec.high]
        for value in values:
            try:
                load_config(config, list(overrides) + [f"{key}={json.dumps(value)}"])
            except ConfigError as exc:
                raise ConfigError(f"tune.space.{key}: {exc}") from None


def _retry_interrupted(study, optuna) -> None:
    """A trial left running by an interrupted study is marked failed and its settings queued again: the
    retry takes the same folder and continues from its checkpoints."""
    for trial in study.trials:
        if trial.state == optuna.trial.TrialState.RUNNING:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            study.enqueue_trial(trial.params, skip_if_exists=False)
            log.info("tune: trial %d was interrupted; its settings run again", trial.number)


def _space_digest(cfg: Config) -> str:
    return _digest({"space": key_dict(cfg.tune), "config": cfg.digest()})


def _write(folder: Path, study, base: Config, config, overrides, optuna) -> Study:
    trials = [
        {
            "number": t.number,
            "state": t.state.name.lower(),
            "settings": t.params,
            f"valid_{VALID_METRIC}": t.value if t.value is not None else t.user_attrs.get("best_before_pruning"),
            "epochs": t.user_attrs.get("epochs"),
            "best_epoch": t.user_attrs.get("best_epoch"),
        }
        for t in study.trials
        if t.state.is_finished()
    ]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = None
    if complete:
        top = max(complete, key=lambda t: t.value)
        best = {"number": top.number, "settings": top.params, f"valid_{VALID_METRIC}": top.value}
    write_json(folder / "trials.json", {"study": study.study_name, "trials": trials, "best": best})
    if best is not None:
        atomic_write_bytes(folder / "best.yaml", _best_config(best, config, overrides).encode())
    return Study(study.study_name, folder, trials, best)


def _best_config(best: dict, config: str | None, overrides: list[str]) -> str:
    """A YAML config: the tuned one (with its overrides) and the best settings on top."""
    data: dict = {}
    for text in list(overrides) + [f"{k}={json.dumps(v)}" for k, v in best["settings"].items()]:
        key, _, value = text.partition("=")
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    head = (
        f"# best of esr tune (trial {best['number']}, validation {VALID_METRIC} {best[f'valid_{VALID_METRIC}']:.4f})\n"
    )
    if config is not None:
        data = {"extends": str(Path(config).resolve()), **data}
    return head + yaml.safe_dump(data, sort_keys=False)


def table(result: Study) -> str:
    lines = [f"| trial | state | {VALID_METRIC} | epochs | settings |", "|---|---|---|---|---|"]
    for t in sorted(result.trials, key=lambda t: -(t[f"valid_{VALID_METRIC}"] or -1)):
        score = t[f"valid_{VALID_METRIC}"]
        settings = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["settings"].items())
        lines.append(
            f"| {t['number']} | {t['state']} | {'' if score is None else f'{score:.4f}'} | {t['epochs']} | {settings} |"
        )
    return "\n".join(lines)


def _optuna():
    try:
        import optuna
    except ImportError:
        raise EsrError("esr tune needs Optuna: pip install 'esrgraph[tune]' (or optuna)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna
