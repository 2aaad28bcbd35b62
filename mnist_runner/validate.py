"""Every check of the composed configuration that needs no data, in one place.

`validate(cfg)` runs before any data is loaded or anything is trained, and raises `ConfigError`
with one line naming the key, the value given and what is allowed; the CLI prints it and exits 2.
`RULES` is a table: key -> what the value must be. A key that the composed config does not have
(an option that only some group entries carry) is skipped. Checks that need the loaded data (a
`dataset.per_class` larger than a class has, a model that cannot take the dataset's input, a loss
that does not fit the dataset and model) run where those facts are known, with the same style of
message.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

from omegaconf import OmegaConf

from .registry import ConfigError
from .speed import COMPILE_MODES


@dataclass(frozen=True)
class Rule:
    ok: Callable[[object], bool]
    allowed: str  # what the value must be, for the message


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def integer(low: int, high: int | None = None) -> Rule:
    allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    return Rule(lambda v: _is_int(v) and v >= low and (high is None or v <= high), allowed)


def number(low: float | None = None, high: float | None = None, *, low_open=False, high_open=False) -> Rule:
    """A finite number within the bounds given (closed unless `*_open`)."""

    def ok(v):
        return (
            _is_number(v)
            and (low is None or (v > low if low_open else v >= low))
            and (high is None or (v < high if high_open else v <= high))
        )

    if high is None:
        allowed = "a number" + ("" if low is None else f" {'>' if low_open else '>='} {low:g}")
    else:
        allowed = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    return Rule(ok, allowed)


def one_of(*options) -> Rule:
    return Rule(lambda v: v in options, "one of: " + ", ".join(map(str, options)))


def optional(rule: Rule, meaning: str) -> Rule:
    return Rule(lambda v: v is None or rule.ok(v), f"{rule.allowed}, or null for {meaning}")


BOOLEAN = Rule(lambda v: isinstance(v, bool), "true or false")
TEXT = Rule(lambda v: isinstance(v, str) and v != "", "a non-empty string")
POSITIVE = number(0, low_open=True)
NON_NEGATIVE = number(0)
UNIT_OPEN = number(0, 1, low_open=True, high_open=True)  # (0, 1)
UNIT_HALF_OPEN = number(0, 1, high_open=True)  # [0, 1)

RULES: dict[str, Rule] = {
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
    "trainer.amp": BOOLEAN,
    "report.plots": BOOLEAN,
    "dataset.root": TEXT,
    "dataset.download": BOOLEAN,
    "dataset.normalize": one_of("none", "fixed", "auto"),
    "dataset.mean": number(),
    "dataset.std": POSITIVE,
    "dataset.binary_labels": one_of("pm1", "01"),
    "dataset.per_class": optional(integer(1), "every example"),
    "dataset.val_fraction": Rule(lambda v: v == 0 or UNIT_OPEN.ok(v), "a number in (0, 1), or 0 for none"),
    "loss.label_smoothing": UNIT_HALF_OPEN,
    "optimizer.lr": POSITIVE,
    "optimizer.momentum": UNIT_HALF_OPEN,
    "optimizer.weight_decay": NON_NEGATIVE,
    "optimizer.nesterov": BOOLEAN,
    "optimizer.eps": POSITIVE,
    "optimizer.betas": Rule(
        lambda v: isinstance(v, list) and len(v) == 2 and all(UNIT_HALF_OPEN.ok(b) for b in v),
        "two numbers in [0, 1), e.g. [0.9,0.999]",
    ),
    "optimizer.rho": number(0, 1),
    "optimizer.alpha": number(0, 1),
    "optimizer.amsgrad": BOOLEAN,
    "optimizer.centered": BOOLEAN,
    "scheduler.step_size": integer(1),
    "scheduler.gamma": POSITIVE,
    "scheduler.eta_min": NON_NEGATIVE,
    "scheduler.max_lr": POSITIVE,
    "scheduler.pct_start": UNIT_OPEN,
    "scheduler.anneal_strategy": one_of("cos", "linear"),
    "scheduler.div_factor": POSITIVE,
    "scheduler.final_div_factor": POSITIVE,
    "device.type": one_of("auto", "cpu", "cuda", "mps"),
}

_ABSENT = object()


def show(value) -> str:
    """A value as one would type it in an override."""
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return repr(value)
    return str(value).replace(" ", "")


def _value(cfg, key: str):
    value = OmegaConf.select(cfg, key, default=_ABSENT)
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return value


def validate(cfg) -> None:
    """Raise ConfigError for the first bad value of the composed config; needs no data."""
    for key, rule in RULES.items():
        value = _value(cfg, key)
        if value is not _ABSENT and not rule.ok(value):
            raise ConfigError(f"{key}={show(value)} is not allowed; it must be {rule.allowed}")
    _check_names(cfg)
    _check_classes(cfg)
    if _value(cfg, "optimizer.nesterov") is True and not _value(cfg, "optimizer.momentum"):
        raise ConfigError(
            f"optimizer.nesterov=true needs optimizer.momentum > 0 (given {show(_value(cfg, 'optimizer.momentum'))})"
        )
    from .devices import resolve_device

    resolve_device(cfg.device.type)


def _check_names(cfg) -> None:
    """Each group's `name` is a registry entry (the group files name them; an override may not)."""
    from .registry import DATASETS, LOSSES, MODELS, OPTIMIZERS, SCHEDULERS

    registries = {
        "model": MODELS,
        "dataset": DATASETS,
        "loss": LOSSES,
        "optimizer": OPTIMIZERS,
        "scheduler": SCHEDULERS,
    }
    for group, registry in registries.items():
        name = _value(cfg, f"{group}.name")
        if name is not _ABSENT and name not in registry:
            raise ConfigError(
                f"{group}.name={show(name)} is not allowed; it must be one of: {', '.join(registry.list())}"
            )


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
        and all(_is_int(c) and 0 <= c < len(names) for c in classes)
        and len(set(classes)) == len(classes)
    ):
        raise ConfigError(
            f"dataset.classes={show(classes)} is not allowed; it must list at least two distinct class "
            f"indices in 0..{len(names) - 1} (dataset={cfg.dataset.name} has {len(names)} classes)"
        )
