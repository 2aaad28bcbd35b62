"""An Optuna search over a sweep's parameters (`hydra/sweeper=optuna`), on Optuna's ask-and-tell API.

The sweeper (hydra_plugins/mnist_runner_optuna.py calls `Search`) asks the study for trials, launches
each as a sweep job numbered by its trial number (so its folder is `N_<overrides>`), through whichever
launcher the sweep uses, and tells the study how each ended, read from the job's summary.json:

- the objective is the best value of the metric each trial reports after every epoch: validation
  accuracy when the run holds out a validation split (`dataset.val_fraction`), else test accuracy;
- with a pruner (`median`, `hyperband`, `successive_halving`), the job itself reports that value to
  the study after each epoch and stops, `status: pruned`, when the pruner says so (`Reporter`): it
  finds its trial through the study's storage, so this works in other processes (joblib, submitit,
  SLURM) as in the sweep's own;
- `completed` is told with its value, `pruned` as pruned, `failed` and `diverged` as failed.

The study lives in `hydra.sweeper.storage`: by default `SWEEP_FOLDER/optuna.db` (SQLite), or a server
(`postgresql://...`) that several machines share. Running the search again into the same sweep folder
(`mnist-runner-resume SWEEP`, or the same `hydra.sweep.dir`) continues it: the trials left running by
an interrupted sweep go on from their checkpoints (continuing.py), each counted once, and new trials are
asked until the study has `n_trials` finished ones. `optimization_results.yaml` holds the best trial.

Everything Optuna is reached through its public API, but for the one thing it has none for: the trial a
job reports to is found from its number by the storage (`_trial`, tested by tests/test_search.py).
"""

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import console
from .registry import ConfigError

ON_TEST = (
    "Note: the trials hold out no validation split (dataset.val_fraction=0), so the search chooses by test "
    "accuracy and the best trial's test accuracy flatters it; dataset.val_fraction=0.1 keeps the test set out"
)

ENV = "MNIST_RUNNER_TRIAL"  # in a job's environment: {"storage", "study", "number", "pruner"} as JSON
SAMPLERS = ("tpe", "random")
PRUNERS = ("none", "median", "hyperband", "successive_halving")
DIRECTIONS = ("maximize", "minimize")
STORAGE_FILE = "optuna.db"
RESULTS_FILE = "optimization_results.yaml"


def _optuna():
    from .loggers import needs

    return needs("optuna", "hydra/sweeper=optuna", "sweep")


def make_sampler(name: str, seed: int | None):
    optuna = _optuna()
    if name not in SAMPLERS:
        raise ConfigError(f"hydra.sweeper.sampler={name!r} is not allowed; it must be one of: {', '.join(SAMPLERS)}")
    return optuna.samplers.TPESampler(seed=seed) if name == "tpe" else optuna.samplers.RandomSampler(seed=seed)


def make_pruner(name: str):
    """The pruner `name` names, with Optuna's defaults but for: median prunes only after the first epoch of the
    first 5 trials; hyperband and successive halving count epochs from 1."""
    optuna = _optuna()
    if name not in PRUNERS:
        raise ConfigError(f"hydra.sweeper.pruner={name!r} is not allowed; it must be one of: {', '.join(PRUNERS)}")
    return {
        "none": lambda: optuna.pruners.NopPruner(),
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3),
        "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
    }[name]()


def open_study(storage: str, name: str, direction: str, sampler=None, pruner=None):
    """The study `name` in `storage`, created when it is not there; ConfigError for a storage that cannot be reached."""
    optuna = _optuna()
    if direction not in DIRECTIONS:
        raise ConfigError(
            f"hydra.sweeper.direction={direction!r} is not allowed; it must be one of: {', '.join(DIRECTIONS)}"
        )
    from sqlalchemy.exc import IntegrityError  # Optuna's RDB storage is SQLAlchemy's

    for wait in (0.2, 0.4, 0.8, 1.6, None):
        try:
            return optuna.create_study(
                storage=storage,
                study_name=name,
                direction=direction,
                sampler=sampler,
                pruner=pruner,
                load_if_exists=True,
            )
        except IntegrityError as e:  # another sweep created the tables or the study at the same moment: open it
            if wait is None:
                raise _unreachable(storage, e) from None
            time.sleep(wait)
        except Exception as e:  # SQLAlchemy's and the drivers' errors: a server down, a bad URL, a wrong password
            raise _unreachable(storage, e) from None


def _unreachable(storage: str, e: Exception) -> ConfigError:
    text = " ".join(str(e).split())[:300]
    return ConfigError(
        f"hydra.sweeper.storage={storage} cannot be reached ({type(e).__name__}: {text}); give a database "
        "Optuna can open, e.g. sqlite:///optuna.db or postgresql://USER:PASSWORD@HOST/DB"
    )


def distributions(params: dict) -> tuple[dict, dict]:
    """The search space of `hydra.sweeper.params` (Hydra's sweep syntax, read as hydra-optuna-sweeper did):
    {key: Optuna distribution} for `interval(a, b)` (floats; `tag(int, ...)`: integers; `tag(log, ...)`: on a
    log scale; both: `tag(int, log, interval(a, b))`), `choice(...)` or `a,b,c` (categorical), `range(a, b,
    step)` (integers); and {key: value} for the keys it fixes."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import IntervalSweep, RangeSweep, Transformer

    optuna = _optuna()
    space, fixed = {}, {}
    for key, text in params.items():
        try:
            override = OverridesParser.create().parse_override(f"{key}={text}")
        except Exception as e:
            raise ConfigError(
                f"hydra.sweeper.params.{key}={text!r} cannot be read: {' '.join(str(e).split())}"
            ) from None
        if not override.is_sweep_override():
            fixed[key] = override.get_value_element_as_str()
            continue
        value = override.value()
        if isinstance(value, IntervalSweep):  # Hydra reads interval's ends as floats: tag(int, ...) for integers
            log = "log" in value.tags
            if "int" in value.tags:
                space[key] = optuna.distributions.IntDistribution(int(value.start), int(value.end), log=log)
            else:
                space[key] = optuna.distributions.FloatDistribution(float(value.start), float(value.end), log=log)
        elif (
            isinstance(value, RangeSweep)
            and not value.shuffle
            and all(isinstance(v, int) for v in (value.start, value.stop, value.step))
        ):
            space[key] = optuna.distributions.IntDistribution(value.start, value.stop - 1, step=value.step)
        else:
            choices = list(override.sweep_iterator(transformer=Transformer.encode))
            space[key] = optuna.distributions.CategoricalDistribution(choices)
    return space, fixed


def objective(summary: dict) -> float | None:
    """The value a finished trial is told: the best validation accuracy with a validation split, else the best
    test accuracy (the metric `Reporter` reports per epoch)."""
    if summary.get("best_val"):
        return float(summary["best_val"]["val_acc"])
    value = summary.get("best_test_acc")
    return None if value is None else float(value)


def reported(row: dict) -> float:
    """The per-epoch value a trial reports: the validation accuracy when there is one, else the test accuracy."""
    return row["val_acc"] if "val_acc" in row else row["test_acc"]


# --- in the job ------------------------------------------------------------------------------------


class Reporter:
    """The running job's side of its trial: each epoch's value to the study, and whether to stop, pruned."""

    def __init__(self, spec: dict):
        self.spec = spec
        study = _optuna().load_study(
            study_name=spec["study"], storage=spec["storage"], pruner=make_pruner(spec["pruner"])
        )
        self.trial = trial_of(study, int(spec["number"]))

    @classmethod
    def of_environment(cls) -> "Reporter | None":
        """The job's reporter when the search launched it with a pruner, else None."""
        spec = os.environ.get(ENV)
        if not spec:
            return None
        spec = json.loads(spec)
        return cls(spec) if spec.get("pruner", "none") != "none" else None

    def report(self, row: dict) -> str | None:
        """Report the epoch's value; why the trial is pruned, or None when it goes on."""
        value = reported(row)
        self.trial.report(value, step=int(row["epoch"]))
        if not self.trial.should_prune():
            return None
        spec = self.spec
        return f"the {spec['pruner']} pruner stopped trial {spec['number']} after epoch {row['epoch']} ({value:.4f})"


def trial_of(study, number: int):
    """The trial numbered `number` of `study`, as an optuna.Trial to report to or to tell. Optuna has no public way
    to get a trial asked earlier (by another process, or an earlier sweep) back from its number: this is the one
    place that reaches inside, to the storage's own lookup (tests/test_search.py fails when Optuna changes it)."""
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return _optuna().trial.Trial(study, trial_id)


# --- in the sweep ----------------------------------------------------------------------------------


@dataclass
class Search:
    """One search: the sweeper's settings (conf: hydra.sweeper) and what it launches through."""

    n_trials: int
    n_jobs: int
    direction: str
    study_name: str
    storage: str | None
    sampler: str
    seed: int | None
    pruner: str
    params: dict = field(default_factory=dict)

    def check(self) -> None:
        for key in ("n_trials", "n_jobs"):
            value = getattr(self, key)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ConfigError(f"hydra.sweeper.{key}={value!r} is not allowed; it must be an integer >= 1")
        make_sampler(self.sampler, self.seed)
        make_pruner(self.pruner)

    def storage_url(self, sweep: Path) -> str:
        return self.storage or f"sqlite:///{(sweep / STORAGE_FILE).resolve()}"

    def run(self, launch, folder_of, sweep: Path, arguments: list[str], on_test: bool = False) -> None:
        """Search: `launch(overrides_list, first_number)` runs jobs numbered from first_number; `folder_of(overrides,
        number)` is a job's folder. Trials left running by an earlier sweep into this folder are continued.
        `on_test`: the trials hold out no validation split, so their objective is test accuracy (a note says so)."""
        from .continuing import finished
        from .run_folder import RunFolder

        optuna = _optuna()
        self.check()
        space, fixed = distributions({**self.params, **dict(a.split("=", 1) for a in arguments)})
        storage = self.storage_url(sweep)
        study = open_study(storage, self.study_name, self.direction, pruner=make_pruner(self.pruner))
        asked = len(study.get_trials(deepcopy=False))  # a continued search: its seed moves on, not to draw again
        study.sampler = make_sampler(self.sampler, None if self.seed is None else self.seed + asked)
        done_states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
        done = len(study.get_trials(deepcopy=False, states=done_states))
        if self.n_trials < done:
            raise ConfigError(
                f"hydra.sweeper.n_trials={self.n_trials} is not allowed: the study {self.study_name} in {storage} "
                f"has {done} finished trials already; give n_trials >= {done}"
            )
        if on_test:
            console.warn(ON_TEST)

        def overrides(trial) -> list[str]:
            from .config import hydra_quoted

            spec = {"storage": storage, "study": self.study_name, "number": trial.number, "pruner": self.pruner}
            params = {**fixed, **{k: _text(v) for k, v in trial.params.items()}}
            return [
                *(f"{k}={v}" for k, v in params.items()),
                f"++hydra.job.env_set.{ENV}={hydra_quoted(json.dumps(spec))}",
            ]

        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        stale = [t for t in running if RunFolder(folder_of(overrides(t), t.number)).is_run]  # an earlier sweep's
        stale = [trial_of(study, t.number) for t in stale if finished(folder_of(overrides(t), t.number)) is None]
        while done < self.n_trials:  # a trial its job did not finish stays running, to be continued, not replaced
            batch = stale[: self.n_jobs]
            stale = stale[len(batch) :]
            batch += [study.ask(space) for _ in range(min(self.n_jobs, self.n_trials - done) - len(batch))]
            jobs = [overrides(trial) for trial in batch]
            for start, end in _consecutive([t.number for t in batch]):
                launch(jobs[start:end], batch[start].number)
            for trial, job in zip(batch, jobs):
                self._tell(study, trial, RunFolder(folder_of(job, trial.number)))
            done += len(batch)
        self._write_results(study, sweep)

    def _tell(self, study, trial, folder) -> None:
        """Tell the study how the trial's job ended: its objective, pruned or failed; nothing while it has not ended."""
        optuna = _optuna()
        summary = folder.summary() if folder.is_run else {}
        status = summary.get("status")
        if status == "completed" and objective(summary) is not None:
            study.tell(trial, objective(summary))
        elif status == "pruned":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif status in ("completed", "failed", "diverged"):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)

    def _write_results(self, study, sweep: Path) -> None:
        from omegaconf import OmegaConf

        from .files import write_atomic

        completed = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
        results = {"name": "optuna", "study": self.study_name, "trials": len(study.get_trials(deepcopy=False))}
        if completed:
            best = study.best_trial
            results.update(best_trial=best.number, best_params=dict(best.params), best_value=best.value)
        write_atomic(sweep / RESULTS_FILE, OmegaConf.to_yaml(results))


def _consecutive(numbers: list[int]) -> list[tuple[int, int]]:
    """(start, end) index ranges of `numbers` that count up by one: each is launched in one call."""
    ranges, start = [], 0
    for i in range(1, len(numbers) + 1):
        if i == len(numbers) or numbers[i] != numbers[i - 1] + 1:
            ranges.append((start, i))
            start = i
    return ranges


def _text(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)
