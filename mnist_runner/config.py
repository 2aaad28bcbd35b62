"""Where the configuration lives, and what it names that is not a YAML file.

- `config_dir()`: conf/, in a source checkout or inside the installed package;
- the resolvers the output folders use (`unique_dir`, `path_safe`);
- how a run folder goes through Hydra's override grammar and the shell (`quote_resume_args`, `resume_command`);
- `setup()`: what Hydra must know before it composes anything, called by each entry point (the runner,
  its Python API, eval, the trackers' replay): the resolvers, Hydra's `hydra/callbacks=sweep_summary`
  option (sweep.py's callback), `hydra/sweeper=basic` (composing each job once) and the cluster
  launchers, stored in Hydra's ConfigStore.

Importing it does nothing else and imports neither Hydra nor torch.
"""

import importlib.util
import os
import re
import shlex
from pathlib import Path


def config_dir() -> str:
    """conf/ ships inside the wheel as mnist_runner/conf; a source checkout has it at the top."""
    here = Path(__file__).resolve().parent
    packaged = here / "conf"
    return str(packaged if packaged.is_dir() else here.parent / "conf")


def unique_dir(base: str) -> str:
    """`base`, or `base-1`, `base-2`, ...: the first that this call could create itself.

    Two runs started in the same second therefore never share a timestamped folder. Registered with
    OmegaConf's cache, so a run's config resolves it once (Hydra copies the cache into each job's config).
    """
    path, n = base, 0
    while True:
        try:
            os.makedirs(path)
            return path
        except FileExistsError:
            n += 1
            path = f"{base}-{n}"


def path_safe(text: str, limit: int = 120) -> str:
    """A folder name from sweep overrides: readable, with only filesystem-safe characters.

    Long decimals (an Optuna trial's 0.06260326907499733) are cut to 4 significant digits; the
    job number in front keeps the names unique.
    """
    text = re.sub(r"(?<![\w.])\d+\.\d{5,}(?:e-?\d+)?(?![\w.])", lambda m: f"{float(m.group()):.4g}", str(text))
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)[:limit] or "default"


_HYDRA_PLAIN = re.compile(r"[\w./+@%:-]+")  # a value Hydra's override grammar reads as it is


def hydra_quoted(text: str) -> str:
    """`text` as a value Hydra's override parser reads back unchanged: as it is when it can be, else
    in single quotes (a sweep job folder such as `0_model=lenet_full,optimizer.lr=0.1` needs them)."""
    if _HYDRA_PLAIN.fullmatch(text):
        return text
    escaped = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text)  # backslashes before a quote, the quote
    return "'" + re.sub(r"(\\+)$", lambda m: m.group(1) * 2, escaped) + "'"


def quote_resume_args(argv: list[str]) -> list[str]:
    """The command line with `resume=FOLDER` quoted for Hydra when FOLDER needs it, so a folder named
    like a sweep job (`=` and `,` in it) can be given as it is. A value that is not a folder and has no
    `=` is left alone (a sweep over folders, `-m resume=a,b`, stays one)."""
    quoted = []
    for arg in argv:
        value = arg.removeprefix("resume=")
        if value != arg and value[:1] not in ("'", '"') and (os.path.isdir(value) or "=" in value):
            arg = "resume=" + hydra_quoted(value)
        quoted.append(arg)
    return quoted


def resume_command(folder) -> str:
    """The shell command that continues the run in `folder`, safe to paste (quoted where the shell needs it)."""
    return "python -m mnist_runner " + shlex.quote(f"resume={folder}")


def setup() -> None:
    """Hydra's set-up for this runner (see the module's docstring); the same each time it is called."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins
    from omegaconf import OmegaConf

    for name, resolver in (("unique_dir", unique_dir), ("path_safe", path_safe)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver, use_cache=True)
    store = ConfigStore.instance()
    store.store(
        group="hydra/callbacks",
        name="sweep_summary",
        node={"sweep_summary": {"_target_": "mnist_runner.sweep.SweepSummary"}},
        provider="mnist_runner",
    )
    # Hydra's first plugin scan runs each plugin's modules, which store their options in the ConfigStore:
    # scan first (Hydra would anyway), so that the options stored below replace theirs.
    Plugins.instance()
    store.store(
        group="hydra/sweeper",
        name="basic",  # Hydra's default sweeper, composing each job once (hydra_plugins/mnist_runner_sweeper.py)
        node={"_target_": "hydra_plugins.mnist_runner_sweeper.Sweeper", "max_batch_size": None, "params": None},
        provider="mnist_runner",
    )
    from hydra_plugins.mnist_runner_optuna import OptunaConf

    store.store(group="hydra/sweeper", name="optuna", node=OptunaConf, provider="mnist_runner")  # search.py
    if importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher"):  # the extra `sweep` is installed
        from . import cluster

        cluster.store_launchers()  # hydra/launcher=slurm, submitit_slurm, local, submitit_local
