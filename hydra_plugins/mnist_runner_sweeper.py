"""mnist_runner's `hydra/sweeper=basic`: Hydra's basic sweeper, continuing a sweep in its folder and
composing each job's config once.

A sweep run again into its own folder (`mnist-runner-resume SWEEP`, or the same `hydra.sweep.dir`)
launches only the jobs that have not finished, under their own job numbers (mnist_runner/continuing.py).

Hydra's sweeper composes every job of a batch before it launches any (`validate_batch_is_legal`: a
bad override stops the sweep before the first job trains), and Hydra's in-process launcher then
composes each job again as it starts it: about 0.08 s a job here, a sixth of what a short job spends
outside its epochs (BENCHMARKS.md). With that launcher, this sweeper hands it the configs its check
composed (the same call on the same master config, so the same config). Other launchers compose
in their own processes and get Hydra's behaviour unchanged.

Hydra instantiates sweepers only from classes its plugin scan finds in the `hydra_plugins` package;
mnist_runner/config.py stores this one under the name `basic`, Hydra's default.
"""

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.types import HydraContext

from mnist_runner.continuing import Unfinished

IN_PROCESS_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
KEPT = 64  # configs kept from a batch's check for its launch, about 0.4 MB each; later jobs compose twice


class ComposedOnce:
    """The config loader, handing out each config composed by the sweeper's check once, to the launcher."""

    def __init__(self, loader):
        self.loader, self.composed = loader, {}

    def __getattr__(self, name):  # everything else is the loader's
        return getattr(self.loader, name)

    def load_sweep_config(self, master_config, sweep_overrides):
        config = self.composed.pop(tuple(sweep_overrides), None)
        return config if config is not None else self.loader.load_sweep_config(master_config, sweep_overrides)


class Sweeper(BasicSweeper):
    def setup(self, *, hydra_context, task_function, config) -> None:
        if config.hydra.launcher.get("_target_") == IN_PROCESS_LAUNCHER:
            loader = ComposedOnce(hydra_context.config_loader)
            hydra_context = HydraContext(config_loader=loader, callbacks=hydra_context.callbacks)
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.launcher = Unfinished(self.launcher, config, hydra_context.config_loader)

    def validate_batch_is_legal(self, batch) -> None:
        loader = self.hydra_context.config_loader
        if not isinstance(loader, ComposedOnce):
            return super().validate_batch_is_legal(batch)
        for number, overrides in enumerate(batch):
            config = loader.load_sweep_config(self.config, list(overrides))
            if number < KEPT:
                loader.composed[tuple(overrides)] = config
