"""Where the configuration lives, and what it names that is not a YAML file.

- `config_dir()`: conf/, in a source checkout or inside the installed package;
- the resolvers the output folders use (`unique_dir`, `path_safe`);
- Hydra's `hydra/callbacks=sweep_summary` option (sweep.py's callback), stored in Hydra's ConfigStore.

Torch-free: the entry point imports it before Hydra composes anything.
"""

import os
import re
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf


def config_dir() -> str:
    """conf/ ships inside the wheel as mnist_runner/conf; a source checkout has it at the top."""
    here = Path(__file__).resolve().parent
    packaged = here / "conf"
    return str(packaged if packaged.is_dir() else here.parent / "conf")


_claimed: dict[str, str] = {}


def unique_dir(base: str) -> str:
    """`base`, or `base-1`, `base-2`, ...: the first that this process could create itself.

    Two runs started in the same second therefore never share a timestamped folder.
    """
    if base not in _claimed:
        path, n = base, 0
        while True:
            try:
                os.makedirs(path)
                break
            except FileExistsError:
                n += 1
                path = f"{base}-{n}"
        _claimed[base] = path
    return _claimed[base]


def path_safe(text: str, limit: int = 120) -> str:
    """A folder name from sweep overrides: readable, with only filesystem-safe characters.

    Long decimals (an Optuna trial's 0.06260326907499733) are cut to 4 significant digits; the
    job number in front keeps the names unique.
    """
    text = re.sub(r"(?<![\w.])\d+\.\d{5,}(?:e-?\d+)?(?![\w.])", lambda m: f"{float(m.group()):.4g}", str(text))
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)[:limit] or "default"


for _name, _fn in (("unique_dir", unique_dir), ("path_safe", path_safe)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn, use_cache=True)

ConfigStore.instance().store(
    group="hydra/callbacks",
    name="sweep_summary",
    node={"sweep_summary": {"_target_": "mnist_runner.sweep.SweepSummary"}},
    provider="mnist_runner",
)
