"""A registry maps a name used in config files to a Python builder.

Config files name registry entries (``model: {name: lenet_full}``); they never carry
import paths, so a config cannot instantiate arbitrary Python objects.
"""

from typing import Callable, Generic, TypeVar

T = TypeVar("T", bound=Callable)


class ConfigError(ValueError):
    """A bad value in the composed configuration: reported as one line, exit code 2."""


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str | Callable | None = None):
        """Decorator registering a builder under `name`, by default the builder's own `__name__`.

        Usable bare (`@REG.register`), with a name (`@REG.register("x")`) or empty (`@REG.register()`).
        """
        if callable(name):  # used bare: @REG.register
            return self.register()(name)

        def decorator(builder: T) -> T:
            key = name or builder.__name__
            if key in self._entries:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._entries[key] = builder
            return builder

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.list())}"
            ) from None

    def build(self, cfg, *args, **kwargs):
        """Call the builder `cfg.name` names, with the entry's other keys as keyword options."""
        options = {k: v for k, v in cfg.items() if k != "name"}
        return self.get(cfg.name)(*args, **kwargs, **options)

    def list(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries
