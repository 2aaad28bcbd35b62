"""Plugins: the user's own models, datasets, losses and optimizers, registered from their own modules.

A plugin is a Python module that registers entries with `mnist_runner.register_model` (and
`register_dataset`, `register_loss`, `register_optimizer`). It is imported
- when it is named in `plugins=[...]`, on the command line or in a YAML file; the directory the
  command was started in is importable, as with `python -m`;
- when an installed package names it in the entry-point group `mnist_runner.plugins`.

`prepare(argv)` runs in the entry point before Hydra composes the config: it imports the plugins
the command line (or the experiment file it names, or the run it resumes) names and the installed
ones, and stores a config node for every entry they registered that has no YAML file, so that
`model=my_net model.width=64` composes with no file to write: the node is the entry's name and its
builder's keyword defaults, which thereby become the group's config keys. `load(names)` runs at the
start of every job, in whichever process runs it (a joblib worker, a submitit job), so every job
has the plugins before its configuration is validated.

Torch-free: a plugin imports what it needs itself.
"""

import importlib
import inspect
import os
import sys
import traceback
from importlib import metadata
from pathlib import Path

from .registry import DATASETS, LOSSES, MODELS, OPTIMIZERS, ConfigError
from .run_folder import CONFIG, RunFolder

ENTRY_POINT_GROUP = "mnist_runner.plugins"

# The dataset keys every dataset has, read by data.load_data rather than by the dataset's builder.
SHARED_DATASET_DEFAULTS = {
    "normalize": "none",  # none, fixed (mean, std below) or auto (estimated on the training split)
    "mean": 0.5,
    "std": 0.5,
    "classes": None,
    "binary_labels": "pm1",
    "per_class": None,
    "val_fraction": 0.0,
}
SHARED_DATASET_KEYS = {*SHARED_DATASET_DEFAULTS, "root", "download"}

# config group -> (registry, the leading builder parameters the runner passes itself)
GROUPS = {
    "model": (MODELS, ("input_shape", "num_classes")),
    "dataset": (DATASETS, ()),
    "loss": (LOSSES, ()),
    "optimizer": (OPTIMIZERS, ("params",)),
}


class PluginError(ConfigError):
    """A plugin that cannot be imported: one line, exit code 2."""


_loaded: set[str] = set()  # plugin modules imported in this process
_entry_points_loaded = False


def prepare(argv: list[str]) -> None:
    """Before Hydra composes: import the plugins `argv` names and the installed ones, and store their config
    nodes. PluginError (one line) for a plugin that cannot be imported."""
    load(names_in_argv(argv))
    store_config_nodes(config_dirs(argv))


def load(names=()) -> None:
    """Import the plugin modules `names` (a list, or one name) and the installed packages' plugins (once each).

    Then every registry that plugins added to loads its built-in entries, so a name registered twice is
    reported now, naming both modules. Raises PluginError for a plugin that cannot be imported.
    """
    global _entry_points_loaded
    names = module_names(names)
    directory = _start_directory()
    if directory not in sys.path:
        sys.path.insert(0, directory)
    if not _entry_points_loaded:
        _entry_points_loaded = True
        for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
            _import_entry_point(entry_point)
    for name in names:
        if name not in _loaded:
            _import_plugin(name, directory)
            _loaded.add(name)
    for registry, _ in GROUPS.values():
        if registry.user_entries():
            registry.load_builtins()


def module_names(value) -> list[str]:
    """`plugins` as a list of module names: null, one name, or a list of names."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if hasattr(value, "__iter__") and not isinstance(value, dict) and all(isinstance(v, str) and v for v in value):
        return list(value)
    raise PluginError(
        f"plugins={str(value).replace(' ', '')} is not allowed; it must be a list of Python module names, "
        f"e.g. plugins=[my_models]"
    )


def _start_directory() -> str:
    """The directory the command was started in: Hydra records it for every job, in whichever process it runs."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return HydraConfig.get().runtime.cwd
    return os.getcwd()


def _import_plugin(name: str, directory: str) -> None:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is not None and (name == e.name or name.startswith(e.name + ".")):
            raise PluginError(
                f"plugins=[{name}]: no module named {name!r} (looked in {directory} and the installed packages); "
                f"give the name of a Python module, e.g. plugins=[my_models] for {directory}/my_models.py"
            ) from None
        raise PluginError(f"plugin {name} could not be imported: {e}") from None
    except ConfigError:
        raise
    except Exception as e:
        raise PluginError(f"plugin {name} failed while importing: {_describe(e)}") from None


def _import_entry_point(entry_point) -> None:
    where = f"entry point {entry_point.name} = {entry_point.value}"
    dist = getattr(entry_point, "dist", None)
    if dist is not None:
        where += f" of the installed package {dist.name}"
    try:
        entry_point.load()
    except ConfigError:
        raise
    except Exception as e:
        raise PluginError(
            f"plugin {where} (group {ENTRY_POINT_GROUP}) failed while importing: {_describe(e)}"
        ) from None


def _describe(e: Exception) -> str:
    """An exception in a plugin's own code, with the line it came from."""
    text = f"{type(e).__name__}: {' '.join(str(e).split())}"
    frames = traceback.extract_tb(e.__traceback__)
    return f"{text} ({frames[-1].filename}, line {frames[-1].lineno})" if frames else text


def names_in_argv(argv: list[str]) -> list[str]:
    """Plugin modules named by `plugins=` on the command line, in the experiment file it selects, or by the
    run it resumes (that run's stored config)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    names: list[str] = []
    parser = OverridesParser.create()
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        try:
            override = parser.parse_overrides([arg])[0]
        except Exception:  # Hydra reports bad overrides itself
            continue
        key, value = override.key_or_group, override.value()
        if key == "plugins":
            values = value.list if override.is_sweep_override() else [value]
            for v in values:
                names += module_names(v)
        elif key in ("experiment", "resume") and isinstance(value, str):
            files = (
                [Path(d) / "experiment" / f"{value}.yaml" for d in config_dirs(argv)]
                if key == "experiment"
                else [RunFolder(value).file(CONFIG)]
            )
            for file in files:
                if file.is_file():
                    found = OmegaConf.select(OmegaConf.load(file), "plugins", default=None)
                    names += module_names(found)
                    break
    return list(dict.fromkeys(names))


def config_dirs(argv: list[str]) -> list[str]:
    """The config folders Hydra searches: those given with --config-dir/-cd first, then the runner's conf/."""
    from .config import config_dir

    dirs = []
    for i, arg in enumerate(argv):
        if arg in ("--config-dir", "-cd") and i + 1 < len(argv):
            dirs.append(argv[i + 1])
        elif arg.startswith("--config-dir="):
            dirs.append(arg.split("=", 1)[1])
    return dirs + [config_dir()]


def store_config_nodes(config_dirs: list[str]) -> None:
    """A config node in Hydra's ConfigStore for every plugin entry that no config folder has a YAML file for."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for group, (registry, passed) in GROUPS.items():
        for name, builder in registry.user_entries().items():
            if any((Path(d) / group / f"{name}.yaml").is_file() for d in config_dirs):
                continue
            node = {"name": name, **builder_options(builder, passed)}
            node.update(SHARED_DATASET_DEFAULTS if group == "dataset" else {})
            store.store(group=group, name=name, node=node, provider=f"plugin {registry.module_of(name)}")


def builder_options(builder, passed: tuple[str, ...] = ()) -> dict:
    """A builder's options and their defaults, as config values: its parameters after those the runner
    passes (`passed`); one with no default is `???` (Hydra's mandatory value), one whose default is no
    config value is left out (the builder keeps it)."""
    try:
        params = list(inspect.signature(builder).parameters.values())
    except (TypeError, ValueError):  # no signature to read (a builtin): no options
        return {}
    if passed and params and params[0].name not in passed:  # passed positionally under other names
        params = params[len(passed) :]
    options = {}
    for p in params:
        if p.name in passed or p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            continue
        value = "???" if p.default is p.empty else _config_value(p.default)
        if value is not _NOT_CONFIG:
            options[p.name] = value
    return options


_NOT_CONFIG = object()


def _config_value(value):
    """`value` as a config value (tuples become lists), or _NOT_CONFIG."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        items = [_config_value(v) for v in value]
        return _NOT_CONFIG if any(v is _NOT_CONFIG for v in items) else items
    if isinstance(value, dict):
        items = {k: _config_value(v) for k, v in value.items()}
        ok = all(isinstance(k, str) for k in items) and all(v is not _NOT_CONFIG for v in items.values())
        return items if ok else _NOT_CONFIG
    return _NOT_CONFIG
