"""Which torch device a run trains on: `auto` (cuda, then mps, then cpu), `cpu`, `cuda`, `mps`."""

import torch

from .registry import ConfigError

DEVICE_TYPES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    return hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


def resolve_device(kind: str) -> torch.device:
    if kind not in DEVICE_TYPES:
        raise ConfigError(f"device.type={kind!r} is not allowed; choose one of: {', '.join(DEVICE_TYPES)}")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device.type='cuda' is not available on this machine (no CUDA device found); use device=cpu or device=auto"
        )
    if kind == "mps" and not _mps_available():
        raise ConfigError(
            "device.type='mps' is not available on this machine (no Apple MPS backend); use device=cpu or device=auto"
        )
    return torch.device(kind)
