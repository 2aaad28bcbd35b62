"""Registries map a name used in config files to a Python builder.

Config files name registry entries (``model: {name: lenet_full}``); they never carry import paths,
so a config cannot instantiate arbitrary Python objects. Users add entries from their own modules
(plugins, see plugins.py) with the same decorators the built-ins use.

This module imports no torch: the registries are created here, and each one imports the modules
that register its built-in entries only when it is first asked for an entry or its list.
"""

import importlib
import sys
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T", bound=Callable)


class ConfigError(ValueError):
    """A bad value in the composed configuration: reported as one line, exit code 2."""


class DataError(RuntimeError):
    """Data files missing, unreadable or corrupt: reported as one line, exit code 1."""


class Registry(Generic[T]):
    """Names -> builders of one kind; `builtins` are the modules registering the built-in ones."""

    def __init__(self, kind: str, builtins: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.builtins = builtins
        self._entries: dict[str, T] = {}
        self._modules: dict[str, str] = {}  # name -> the module that registered it
        self._rules: dict[str, dict] = {}  # name -> {option: rules.Rule}
        self._checks: dict[str, Callable] = {}  # name -> check(options) for combinations of options
        self._builtins_loaded = not builtins

    def register(self, name: str | Callable | None = None, *, rules: dict | None = None, check: Callable | None = None):
        """Decorator registering a builder under `name`, by default the builder's own `__name__`.

        Usable bare (`@REG.register`), with a name (`@REG.register("x")`) or empty (`@REG.register()`).
        `rules`: {option: rules.Rule}, what this entry's options must be, checked before any data is
        loaded (validate.py); `check(options)` raises ConfigError for a combination of them that cannot be.
        A name registered twice is refused, naming both modules.
        """
        if callable(name):  # used bare: @REG.register
            return self.register()(name)

        def decorator(builder: T) -> T:
            key = name or builder.__name__
            module = _caller_module()
            if key in self._entries and self._entries[key] is not builder:
                raise ConfigError(
                    f"{self.kind} {key!r} is already registered by {self._modules[key]}; {module} registers it "
                    f"again: rename one of them"
                )
            self._entries[key] = builder
            self._modules[key] = module
            self._rules[key] = dict(rules or {})
            if check is not None:
                self._checks[key] = check
            return builder

        return decorator

    def rules(self, name: str) -> dict:
        """The rules `name` was registered with: {option: rules.Rule}."""
        self.load_builtins()
        return self._rules.get(name, {})

    def check(self, name: str, options: dict) -> None:
        """Run the entry's check of a combination of its `options`, if it has one."""
        self.load_builtins()
        if name in self._checks:
            self._checks[name](options)

    def load_builtins(self) -> None:
        """Import the modules that register the built-in entries (once)."""
        if self._builtins_loaded:
            return
        self._builtins_loaded = True  # before importing: those modules register into this registry
        for module in self.builtins:
            importlib.import_module(module)

    def get(self, name: str) -> T:
        self.load_builtins()
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.list())}") from None

    def build(self, cfg, *args, **kwargs):
        """Call the builder `cfg.name` names, with the entry's other keys as keyword options."""
        options = {k: v for k, v in cfg.items() if k != "name"}
        return self.get(cfg.name)(*args, **kwargs, **options)

    def module_of(self, name: str) -> str:
        """The module that registered `name`."""
        self.load_builtins()
        return self._modules[name]

    def user_entries(self) -> dict[str, T]:
        """The entries registered so far by modules outside mnist_runner (plugins), without loading built-ins."""
        return {k: v for k, v in self._entries.items() if not _is_builtin(self._modules[k])}

    def list(self) -> list[str]:
        self.load_builtins()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self.load_builtins()
        return name in self._entries


def _is_builtin(module: str) -> bool:
    return module == "mnist_runner" or module.startswith("mnist_runner.")


def _caller_module() -> str:
    """The module whose code called into this one (the one registering)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    return frame.f_globals.get("__name__", "?") if frame is not None else "?"


MODELS: Registry = Registry("model", ("mnist_runner.models",))
DATASETS: Registry = Registry("dataset", ("mnist_runner.data", "mnist_runner.user_data"))
LOSSES: Registry = Registry("loss", ("mnist_runner.losses",))
OPTIMIZERS: Registry = Registry("optimizer", ("mnist_runner.optim",))
SCHEDULERS: Registry = Registry("scheduler", ("mnist_runner.optim",))
LOGGERS: Registry = Registry("logger", ("mnist_runner.loggers",))
