"""mnist_runner's cluster launchers (mnist_runner/cluster.py): Hydra's submitit launchers with lost jobs
recorded, SIGUSR2 requeueing and requeued jobs continuing from their checkpoint.

Hydra instantiates launchers only from classes its plugin scan finds in the `hydra_plugins` package,
so they are defined here; the options that select them are stored by mnist_runner/cluster.py.
"""

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
except ImportError:  # the extra `sweep` is not installed: no cluster launchers
    BaseSubmititLauncher = None

if BaseSubmititLauncher is not None:
    from mnist_runner.cluster import ClusterLauncher

    class SlurmLauncher(ClusterLauncher, BaseSubmititLauncher):
        _EXECUTOR = "slurm"

    class LocalLauncher(ClusterLauncher, BaseSubmititLauncher):
        _EXECUTOR = "local"
