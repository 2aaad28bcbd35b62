"""Hydra's own errors, as the one line every other bad input gets.

Hydra prints the errors it meets while composing (a key or a group option that does not exist, an
override it cannot parse) itself, with hints and listings, and exits 1; it raises them instead only
when HYDRA_FULL_ERROR=1 is set (`hydra._internal.utils.run_and_report`: no public API offers the
exception). `composing()` sets that variable for the call, marked as the runner's own, and turns
Hydra's errors into a `ConfigError`: for a key that does not exist, the nearest known key
(`validate.unknown_key`); for a group option that does not exist, the nearest option and the command
that lists them all. tests/test_hydra_errors.py fails when Hydra stops raising under the variable.

`user_wants_traceback()` is whether the user set HYDRA_FULL_ERROR=1: then errors are raised as they
are, with their traceback, everywhere in the runner.
"""

import difflib
import os
import re
from contextlib import contextmanager

from .registry import ConfigError

FULL_ERROR = "HYDRA_FULL_ERROR"
OURS = "MNIST_RUNNER_FULL_ERROR"  # set beside it when the runner set it (inherited by job processes)
LIST_OPTIONS = "python -m mnist_runner --help"


def user_wants_traceback() -> bool:
    return os.environ.get(FULL_ERROR) == "1" and os.environ.get(OURS) != "1"


@contextmanager
def composing(argv: list[str]):
    """Run Hydra's main (on the command line `argv`) with its composition errors raised as ConfigError."""
    from hydra.errors import HydraException

    if user_wants_traceback():
        yield
        return
    saved = {name: os.environ.get(name) for name in (FULL_ERROR, OURS)}
    os.environ[FULL_ERROR] = os.environ[OURS] = "1"
    try:
        yield
    except HydraException as e:
        raise ConfigError(one_line(e, argv)) from None
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def one_line(error, argv: list[str]) -> str:
    """Hydra's error `error` about the command line `argv`, in one line."""
    from hydra.errors import MissingConfigException

    if isinstance(error, MissingConfigException) and error.missing_cfg_file and error.options is not None:
        group, _, option = error.missing_cfg_file.rpartition("/")
        return missing_option(group, option, error.options)
    found = re.match(r"Could not override '([^']+)'", str(error))
    if found and _is_unknown_key(error) and not found.group(1).startswith("hydra."):  # the runner's own keys
        return unknown_key(found.group(1), argv)
    text = " ".join(str(error).split("\nConfig search path")[0].split())
    cause = error.__cause__
    if cause is not None and str(cause).split("\n")[0] not in text:
        text += f": {str(cause).splitlines()[0]}"
    return text


def missing_option(group: str, option: str, options) -> str:
    """`group=option` names no option of the group: the nearest ones, and where to see them all."""
    near = difflib.get_close_matches(option, list(options), n=1)
    hint = f"did you mean {group}={near[0]}? " if near else ""
    return f"{group}={option} is not an option of {group}; {hint}{LIST_OPTIONS} lists them all"


def unknown_key(key: str, argv: list[str]) -> str:
    """`key` (overridden on the command line `argv`) is in no config: the nearest key the runner knows, found
    in the config the command composes without that override."""
    from .validate import unknown_key_message

    rest = [a for a in argv if not re.match(rf"[+~]*{re.escape(key)}=", a)]
    try:
        cfg = _compose(rest)
    except Exception:  # the rest does not compose either: say what is known without it
        return f"{key} is not a key of the configuration"
    return unknown_key_message(cfg, key)


def _is_unknown_key(error) -> bool:
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    return isinstance(error.__cause__, (ConfigAttributeError, ConfigKeyError))


def _compose(overrides: list[str]):
    """The config of `overrides` as the runner composes it (Hydra's compose API, on conf/)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from .config import config_dir, setup

    setup()
    GlobalHydra.instance().clear()
    flags = [a for a in overrides if a.startswith("-")]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=[a for a in overrides if a not in flags])
