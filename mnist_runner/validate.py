"""Every check of the composed configuration that needs no data, in one place.

`validate(cfg)` runs before any data is loaded or anything is trained, and raises `ConfigError`
with one line naming the key, the value given and what is allowed; the CLI prints it and exits 2.

- The runner's own keys (`seed`, `trainer.*`, `report.*`, the keys every dataset shares, `device.type`)
  have their rules in `SHARED`; they are also the only keys those groups know.
- The option a group chooses (`model=mlp`, `optimizer=rmsprop`, a plugin's `model=my_net`) is a
  registry entry: its keys are its builder's options, each checked by the rule the entry was registered
  with (rules.py) or else by the type of its default, then by the entry's check of their combination.
- A key the runner does not know is refused with the nearest one it knows (`unknown_key_message`),
  also when it came in with `+key=value`.

Checks that need the loaded data (a `dataset.per_class` larger than a class has, a model that cannot
take the dataset's input, a loss that does not fit the dataset and model) run where those facts are
known, with the same style of message.
"""

import difflib

from omegaconf import OmegaConf

from .monitor import CHOICES as MONITOR_CHOICES
from .registry import ConfigError
from .rules import (
    ANY,
    BOOLEAN,
    NON_NEGATIVE,
    POSITIVE,
    TEXT,
    UNIT_OPEN,
    Rule,
    broken,
    integer,
    like,
    number,
    one_of,
    optional,
    show,
)
from .speed import COMPILE_MODES

SHARED: dict[str, Rule] = {
    "seed": integer(0, 2**32 - 1),
    "trainer.epochs": integer(1),
    "trainer.batch_size": integer(1),
    "trainer.eval_batch_size": integer(1),
    "trainer.log_interval": integer(1),
    "trainer.progress": BOOLEAN,
    "trainer.deterministic": BOOLEAN,
    "trainer.threads": optional(integer(1), "the default"),
    "trainer.channels_last": BOOLEAN,
    "trainer.compile": Rule(
        lambda v: isinstance(v, bool) or v in COMPILE_MODES,
        "true, false or a torch.compile mode: " + ", ".join(COMPILE_MODES),
    ),
    "trainer.amp": Rule(lambda v: isinstance(v, bool) or v == "auto", "true, false or auto"),
    "trainer.monitor": one_of(*MONITOR_CHOICES),
    "trainer.early_stopping.patience": optional(integer(1), "no early stopping"),
    "trainer.early_stopping.min_delta": NON_NEGATIVE,
    "report.plots": BOOLEAN,
    "dataset.root": TEXT,
    "dataset.download": BOOLEAN,
    "dataset.normalize": one_of("none", "fixed", "auto"),
    "dataset.mean": optional(number(), "the dataset's own"),
    "dataset.std": optional(POSITIVE, "the dataset's own"),
    "dataset.classes": ANY,  # checked against the dataset's classes below
    "dataset.binary_labels": one_of("pm1", "01"),
    "dataset.per_class": optional(integer(1), "every example"),
    "dataset.val_fraction": Rule(lambda v: v == 0 or UNIT_OPEN.ok(v), "a number in (0, 1), or 0 for none"),
    "device.type": one_of("auto", "cpu", "cuda", "mps"),
}
OWN_GROUPS = ("trainer", "report", "augment")  # groups whose keys the runner owns (SHARED's, augment.py's)
TOP_LEVEL = ("seed", "resume", "plugins", "trainer", "report", "augment", "device", "logger")  # and the registries
_ABSENT = object()


def _registries() -> dict:
    """config group -> (registry, the leading builder parameters the runner passes itself)."""
    from .plugins import GROUPS
    from .registry import SCHEDULERS

    return {**GROUPS, "scheduler": (SCHEDULERS, ("optimizer", "epochs", "steps_per_epoch"))}


def _value(cfg, key: str):
    value = OmegaConf.select(cfg, key, default=_ABSENT)
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return value


def validate(cfg) -> None:
    """Raise ConfigError for the first bad value (or unknown key) of the composed config; needs no data."""
    for key in _keys(cfg):
        if key not in known_keys(cfg):
            raise ConfigError(unknown_key_message(cfg, key))
    for key, rule in SHARED.items():
        value = _value(cfg, key)
        if value is not _ABSENT and (message := broken(key, value, rule)):
            raise ConfigError(message)
    for group, (registry, passed) in _registries().items():
        _check_entry(cfg, group, registry, passed)
    _check_classes(cfg)
    from .monitor import Monitor

    Monitor.of(cfg.trainer, bool(OmegaConf.select(cfg, "dataset.val_fraction", default=0)))  # a metric it will have
    if OmegaConf.select(cfg, "augment") is not None:
        from .augment import Augment

        Augment.from_config(_value(cfg, "augment"))  # its strengths' rules (augment.py)
    from .devices import resolve_device

    resolve_device(cfg.device.type)


def _keys(cfg) -> list[str]:
    """The keys validate knows of: the top level's, the runner's own groups' (dotted, to the leaves) and each
    entry's options."""
    keys = [str(k) for k in cfg.keys() if k != "hydra"]
    for group in (*OWN_GROUPS, *_registries()):
        node = OmegaConf.select(cfg, group)
        if OmegaConf.is_dict(node):
            keys += _dotted(node, group) if group in OWN_GROUPS else [f"{group}.{k}" for k in node.keys()]
    return keys


def _dotted(node, prefix: str) -> list[str]:
    keys = []
    for key, value in node.items_ex(resolve=False):
        name = f"{prefix}.{key}"
        keys += _dotted(value, name) if OmegaConf.is_dict(value) else [name]
    return keys


def known_keys(cfg) -> set[str]:
    """Every key the composed config may have: the top level's, SHARED's, and the chosen entries' options."""
    from .augment import Augment
    from .plugins import SHARED_DATASET_KEYS, builder_options

    known = {*TOP_LEVEL, *_registries(), *SHARED, *(f"augment.{f}" for f in ("name", *Augment.__dataclass_fields__))}
    for group, (registry, passed) in _registries().items():
        name = _value(cfg, f"{group}.name")
        known.add(f"{group}.name")
        if not isinstance(name, str) or name not in registry:
            continue
        entry = registry.get(name)
        options = getattr(entry, "options", None)  # a dataset in torchvision's layout names its options
        keys = options if options is not None else builder_options(entry, passed)
        known.update(f"{group}.{k}" for k in keys)
        if group == "dataset":
            known.update(f"dataset.{k}" for k in SHARED_DATASET_KEYS)
    return known


def unknown_key_message(cfg, key: str) -> str:
    """`key` is not a key of `cfg`'s runner: the line that says so, with the nearest key it knows."""
    group = key.split(".")[0] if "." in key else None
    if group is None:
        known = sorted(k for k in known_keys(cfg) if "." not in k)
    else:
        known = sorted(k for k in known_keys(cfg) if k.split(".")[0] == group and k != f"{group}.name" and "." in k)
    name = _value(cfg, f"{group}.name") if group in _registries() else _ABSENT
    where = f" of {group}={name}" if isinstance(name, str) else ""
    keys = [k.split(".", 1)[1] if group else k for k in known]  # compared without the group's prefix
    near = difflib.get_close_matches(key.split(".", 1)[1] if group else key, keys, n=1, cutoff=0.6)
    if near:
        return f"{key} is not a key{where}; did you mean {f'{group}.' if group else ''}{near[0]}?"
    if not keys:
        return f"{key} is not a key{where}, which has no keys to set"
    return f"{key} is not a key{where}; its keys are: {', '.join(keys)}"


def _check_entry(cfg, group: str, registry, passed: tuple[str, ...]) -> None:
    """The group's `name` is a registry entry, and its options are what the entry allows."""
    from .plugins import SHARED_DATASET_KEYS, builder_options

    name = _value(cfg, f"{group}.name")
    if name is _ABSENT:
        return
    if name not in registry:
        raise ConfigError(f"{group}.name={show(name)} is not allowed; it must be one of: {', '.join(registry.list())}")
    options = {k: v for k, v in (_value(cfg, group) or {}).items() if k != "name"}
    rules = registry.rules(name)
    entry = registry.get(name)
    defaults = {} if hasattr(entry, "options") else builder_options(entry, passed)
    for key, value in options.items():
        if group == "dataset" and key in SHARED_DATASET_KEYS:
            continue  # SHARED's
        default = defaults.get(key)
        rule = rules.get(key) or (like(default) if default != "???" else None)  # ???: an option with no default
        if rule is not None and (message := broken(f"{group}.{key}", value, rule)):
            raise ConfigError(message)
    registry.check(name, options)


def _check_classes(cfg) -> None:
    """`dataset.classes` lists at least two distinct classes that the dataset has."""
    classes = _value(cfg, "dataset.classes")
    if classes is _ABSENT or classes is None:
        return
    from .registry import DATASETS

    source = DATASETS.get(cfg.dataset.name)
    if not hasattr(source, "class_names"):
        return  # a dataset read from arrays (npz, image_folder, plugins): checked once read (user_data.py)
    options = {key: cfg.dataset[key] for key in getattr(source, "options", ())}
    try:
        names = list(source.class_names(**options))
    except (KeyError, TypeError):
        return  # a bad dataset option is reported by the dataset's own loader
    if not (
        isinstance(classes, list)
        and len(classes) >= 2
        and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < len(names) for c in classes)
        and len(set(classes)) == len(classes)
    ):
        raise ConfigError(
            f"dataset.classes={show(classes)} is not allowed; it must list at least two distinct class "
            f"indices in 0..{len(names) - 1} (dataset={cfg.dataset.name} has {len(names)} classes)"
        )
