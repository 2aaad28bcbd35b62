"""How a run uses the hardware: `trainer.threads`, `.channels_last`, `.compile` and `.amp`.

`configure` checks those keys against the device and sets the CPU's intra-op threads;
`Speed.forward_model` returns the module the training and evaluation loops call. That is the model
itself, or a compiled / autocast view of it that shares its parameters, so the optimizer,
checkpoints, `model.pt` and the model summary always see the plain model.
"""

import os
import shutil
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .registry import ConfigError

# Measured on a 2-core CPU (BENCHMARKS.md): small models gain little or nothing from a second
# intra-op thread, and lose badly when the cores are busy with other work (OpenMP threads spin
# while waiting for each other). One thread per run is the robust choice on a CPU; several runs
# at once (sweeps, other jobs) then each keep a core. GPU runs keep PyTorch's default.
CPU_DEFAULT_THREADS = 1
# trainer.compile: false, true (torch.compile's default mode) or one of its modes by name.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_TORCH_DEFAULT_THREADS = torch.get_num_threads()  # before any run changes it


@dataclass(frozen=True)
class Speed:
    threads: int
    channels_last: bool
    compile: bool | str  # False, True or a torch.compile mode
    amp: bool

    def as_dict(self) -> dict:
        return asdict(self)

    def forward_model(self, model: nn.Module) -> nn.Module:
        """Put `model` in channels-last layout if asked; return the module the loops should call."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)  # in place: 4-D weights only, the same Parameters
        forward = Autocast(model) if self.amp else model
        if not self.compile:
            return forward
        return torch.compile(forward, mode=None if self.compile is True else self.compile)


class Autocast(nn.Module):
    """The wrapped model's forward pass under bf16 autocast; logits come back as float32.

    The backward pass runs outside autocast, as PyTorch recommends, and the loss is computed in
    float32 on the returned logits.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            return self.model(x).float()


def default_threads(device: torch.device) -> int:
    """`trainer.threads=null`: one thread on the CPU, PyTorch's own default with an accelerator."""
    return CPU_DEFAULT_THREADS if device.type == "cpu" else _TORCH_DEFAULT_THREADS


def configure(trainer, device: torch.device) -> Speed:
    """Check trainer.compile/.amp against `device`, set the CPU threads, return the settings.

    The values' types and ranges were checked by `validate.validate`; here only what depends on
    the device.
    """
    threads = trainer.get("threads")
    if threads is None:
        threads = default_threads(device)
    speed = Speed(
        threads, trainer.get("channels_last", False), trainer.get("compile", False), trainer.get("amp", False)
    )
    if speed.amp and device.type != "cuda":
        raise ConfigError(
            f"trainer.amp=true is bf16 autocast on CUDA, and this run's device is {device.type}; "
            "set trainer.amp=false (or device=cuda)"
        )
    if speed.compile and device.type == "cpu" and not _cpp_compiler():
        raise ConfigError(
            f"trainer.compile={speed.compile} on the CPU needs a C++ compiler (none of $CXX, c++, g++, clang++ is on "
            "PATH); install one or set trainer.compile=false"
        )
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return speed


def _cpp_compiler() -> str | None:
    names = [os.environ.get("CXX"), "c++", "g++", "clang++"]
    return next((path for name in names if name and (path := shutil.which(name))), None)
