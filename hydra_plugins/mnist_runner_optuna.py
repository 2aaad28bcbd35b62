"""mnist_runner's `hydra/sweeper=optuna`: an Optuna search on Optuna's own ask-and-tell API, with pruning,
shared storage and a search that continues in its sweep folder (the search itself: mnist_runner/search.py).

Hydra instantiates sweepers only from classes its plugin scan finds in the `hydra_plugins` package;
mnist_runner/config.py stores this one's options under the name `optuna` (`OptunaConf`).
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf

from mnist_runner.continuing import job_folder
from mnist_runner.search import Search


@dataclass
class OptunaConf:
    _target_: str = "hydra_plugins.mnist_runner_optuna.OptunaSweeper"
    n_trials: int = 20  # the study's finished trials, in all (a continued search asks only the rest)
    n_jobs: int = 1  # trials in flight at once (through a parallel launcher: joblib, submitit, SLURM)
    direction: str = "maximize"  # maximize or minimize the objective (the best accuracy: mnist_runner/search.py)
    study_name: str = "mnist_runner"
    storage: Any = None  # null: SWEEP_FOLDER/optuna.db (SQLite); postgresql://USER:PASSWORD@HOST/DB to share one
    sampler: str = "tpe"  # tpe or random
    seed: Any = None  # the sampler's seed (null: a new one each time)
    pruner: str = "none"  # none, median, hyperband or successive_halving: stop trials early, after an epoch
    params: dict = field(default_factory=dict)  # the search space: KEY: interval(a, b), tag(log, ...), choice(...)


class OptunaSweeper(Sweeper):
    def __init__(self, **settings):
        self.search = Search(
            **{k: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v for k, v in settings.items()}
        )

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def sweep(self, arguments: list[str]) -> None:
        sweep = Path(str(self.config.hydra.sweep.dir))
        sweep.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep / "multirun.yaml")  # as Hydra's sweepers do: the sweep's config
        searched = [*self.search.params, *(a.split("=", 1)[0] for a in arguments)]
        on_test = not OmegaConf.select(self.config, "dataset.val_fraction") and "dataset.val_fraction" not in searched

        def folder_of(overrides: list[str], number: int) -> Path:
            return job_folder(self.config, self.hydra_context.config_loader, overrides, number)

        self.search.run(self.launcher.launch, folder_of, sweep, list(arguments), on_test=on_test)
