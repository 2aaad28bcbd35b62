"""How a run uses the hardware: `trainer.threads`, `.channels_last`, `.compile` and `.amp`.

`configure` checks those keys against the device and sets the CPU's intra-op threads;
`Speed.forward_model` returns the module the training and evaluation loops call. That is the model
itself, or a compiled / autocast view of it that shares its parameters, so the optimizer,
checkpoints, `model.pt` and the model summary always see the plain model.

`trainer.threads=null` on the CPU (`cpu_threads`): an explicit `OMP_NUM_THREADS` (joblib's workers
get cores // n_jobs) or `SLURM_CPUS_PER_TASK`; else, in a multirun whose launcher runs jobs side by
side (joblib's `n_jobs`), this process's cores divided between them; else every core this process
may use. A resumed run keeps the count it started with, as results are bit-identical only for the
same count; `trainer.threads=N` fixes it. summary.json records the count (`speed.threads`), why
(`speed.threads_from`) and how many cores other processes kept busy as the run started
(`speed.other_work`); when they share the run's cores, a note says that fewer threads may be faster:
OpenMP threads sharing a core with other work make every step wait for the slowest (BENCHMARKS.md).
The count does not follow the load, so the same command on the same machine computes the same.
"""

import math
import os
import shutil
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from . import console, cpu
from .registry import ConfigError

# trainer.compile: false, true (torch.compile's default mode) or one of its modes by name.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_TORCH_DEFAULT_THREADS = torch.get_num_threads()  # before any run changes it


@dataclass(frozen=True)
class Speed:
    threads: int
    channels_last: bool
    compile: bool | str  # False, True or a torch.compile mode
    amp: bool  # bf16 autocast on (trainer.amp=auto resolved to what the device runs natively)
    threads_from: str = "trainer.threads"  # what chose `threads`
    other_work: float | None = None  # cores other processes kept busy as the run started (CPU runs)
    bf16: str | None = None  # with amp: the hardware that runs bf16 (`avx512_bf16 (AMD EPYC)`, the GPU's name)

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


def default_threads(device: torch.device, resumed_threads: int | None = None) -> tuple[int, str]:
    """`trainer.threads=null`: (threads, what chose them). The CPU: those of the run being resumed,
    else `cpu_threads()`; with an accelerator, PyTorch's own default (the CPU only launches kernels)."""
    if device.type != "cpu":
        return _TORCH_DEFAULT_THREADS, "PyTorch's default"
    if resumed_threads:
        return int(resumed_threads), "the resumed run"
    return cpu_threads()


def cpu_threads() -> tuple[int, str]:
    """Intra-op threads for a run on the CPU, and why (see the module's docstring)."""
    for name in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value), name
    cores = min(cpu.available_cores(), _TORCH_DEFAULT_THREADS)  # PyTorch's default: no SMT siblings
    jobs = parallel_jobs(cores)
    if jobs > 1:
        return max(1, cores // jobs), f"{cores} cores / {jobs} parallel jobs"
    return cores, f"{cores} cores"


def parallel_jobs(cores: int) -> int:
    """How many jobs of this Hydra multirun run at once: joblib's `n_jobs` (-1: one per core), else 1."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:
        return 1
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return 1
    n_jobs = HydraConfig.get().launcher.get("n_jobs")
    if not isinstance(n_jobs, int) or n_jobs == 0:
        return 1
    return n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)  # joblib: -1 all cores, -2 all but one


def configure(trainer, device: torch.device, resumed_threads: int | None = None) -> Speed:
    """Check trainer.compile/.amp against `device`, set the CPU threads, return the settings.

    The values' types and ranges were checked by `validate.validate`; here only what depends on
    the device. `resumed_threads`: the threads of the run being resumed (kept unless
    `trainer.threads` is given).
    """
    threads, chosen_by = trainer.get("threads"), "trainer.threads"
    if threads is None:
        threads, chosen_by = default_threads(device, resumed_threads)
    busy = cpu.other_work() if device.type == "cpu" else None
    speed = Speed(
        threads,
        trainer.get("channels_last", False),
        trainer.get("compile", False),
        trainer.get("amp", False),
        chosen_by,
        None if busy is None else round(busy, 2),
    )
    if busy is not None and threads > 1 and threads + busy > cpu.available_cores() + 0.4:
        console.say(
            f"Note: other processes kept {busy:.1f} of the {cpu.available_cores()} cores busy as this run started; "
            f"its {threads} threads will wait for each other on shared cores (fewer, e.g. "
            f"trainer.threads={max(1, threads - math.ceil(busy - 0.4))}, may be faster while that lasts)"
        )  # on stdout with the epoch lines: information, not an error (stderr keeps one line per error)
    if speed.amp == "auto":  # bf16 where the device runs it natively, else float32; the run records which
        hardware = native_bf16(device)
        speed = replace(speed, amp=hardware is not None, bf16=hardware)
        console.say(f"trainer.amp=auto: {f'bf16 autocast on {hardware}' if hardware else why_float32(device)}")
    elif speed.amp:
        speed = replace(speed, bf16=bf16_hardware(device))
    if speed.compile and device.type == "cpu" and not _cpp_compiler():
        raise ConfigError(
            f"trainer.compile={speed.compile} on the CPU needs a C++ compiler (none of $CXX, c++, g++, clang++ is on "
            "PATH); install one or set trainer.compile=false"
        )
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return speed


def native_bf16(device: torch.device) -> str | None:
    """The hardware that runs bf16 natively on `device` (a CUDA GPU with bf16 units, a CPU with bf16
    instructions), or None."""
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported(including_emulation=False)
        return torch.cuda.get_device_name(device) if native else None
    return cpu.native_bf16() if device.type == "cpu" else None


def why_float32(device: torch.device) -> str:
    if device.type == "cpu":
        return "float32 (this CPU has no bf16 instructions, so bf16 would be emulated and slower)"
    return f"float32 (no native bf16 autocast on {device.type} here)"


def bf16_hardware(device: torch.device) -> str:
    """What runs bf16 autocast for trainer.amp=true: a CUDA GPU, or a CPU with bf16 instructions; ConfigError
    elsewhere (emulated bf16 is slower than float32, so there it would only cost)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        native = cpu.native_bf16()
        if native is None:
            raise ConfigError(
                "trainer.amp=true is not allowed on this CPU: it has no bf16 instructions (x86: amx_bf16 or "
                "avx512_bf16; Arm: bf16), so bf16 would be emulated and slower than float32; set trainer.amp=false"
            )
        return native
    raise ConfigError(
        f"trainer.amp=true is not allowed on {device.type}: bf16 autocast runs here on CUDA or on a CPU with bf16 "
        "instructions; set trainer.amp=false"
    )


def _cpp_compiler() -> str | None:
    names = [os.environ.get("CXX"), "c++", "g++", "clang++"]
    return next((path for name in names if name and (path := shutil.which(name))), None)
