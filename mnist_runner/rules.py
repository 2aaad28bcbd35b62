"""What a config value must be: `Rule`s, and the one-line message when a value breaks one.

A rule belongs to what it checks: the runner's own keys (`trainer.*`, `report.*`, the keys every
dataset shares, ...) have theirs in validate.py; a registry entry declares the rules of its own
options where it is registered (`@OPTIMIZERS.register(rules={"alpha": number(0, 1)})`), so an option
of one entry never gets another entry's range. Torch-free.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

from omegaconf import OmegaConf


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
ANY = Rule(lambda v: True, "anything")
POSITIVE = number(0, low_open=True)
NON_NEGATIVE = number(0)
UNIT_OPEN = number(0, 1, low_open=True, high_open=True)  # (0, 1)
UNIT_HALF_OPEN = number(0, 1, high_open=True)  # [0, 1)
BETAS = Rule(
    lambda v: isinstance(v, list) and len(v) == 2 and all(UNIT_HALF_OPEN.ok(b) for b in v),
    "two numbers in [0, 1), e.g. [0.9,0.999]",
)


def like(default) -> Rule | None:
    """The rule a builder option's default implies for its type: a list for a list or tuple, a number for a
    float, an integer, true/false, a string; None (anything) for a default of None."""
    if isinstance(default, bool):
        return BOOLEAN
    if isinstance(default, int):
        return Rule(_is_int, "an integer")
    if isinstance(default, float):
        return Rule(_is_number, "a number")
    if isinstance(default, str):
        return Rule(lambda v: isinstance(v, str), "a string")
    if isinstance(default, (list, tuple)):
        return Rule(lambda v: isinstance(v, list), f"a list, like its default {show(list(default))}")
    return None


def show(value) -> str:
    """A value as one would type it in an override: null, true, 0.1, 'text', [1,2], {a:1}."""
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(show, value)) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{show(v)}" for k, v in value.items()) + "}"
    return str(value)


def broken(key: str, value, rule: Rule) -> str | None:
    """The message when `value` of `key` breaks `rule`, else None."""
    if rule.ok(value):
        return None
    return f"{key}={show(value)} is not allowed; it must be {rule.allowed}"
