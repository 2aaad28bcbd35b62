"""The CPU as a run finds it, torch-free: the cores this process may use, how busy other processes
keep them, and OpenMP's environment, which must be set before torch starts its OpenMP runtime.

`prepare()` runs first thing in the entry point (train.py), before torch is imported: it sets
SETTINGS (processes it starts, joblib's workers and submitit's jobs, inherit them) and starts the
window over which `other_work()` measures how busy other processes keep the cores (recorded in
summary.json; speed.py notes when they share the run's cores).

Why GOMP_SPINCOUNT: PyTorch's CPU kernels run in OpenMP parallel regions, dozens per training step
of a small model. Between regions GNU OpenMP's idle threads spin, 300,000 rounds by default
(milliseconds), waiting for the next one. On a machine whose cores other work also wants, a
spinning thread holds a core the others need, and with other OpenMP programs spinning too a
LeNet-5 step took 6-10x as long. 5,000 rounds (about 0.1 ms here) still bridge the gaps between
one step's regions, so an idle machine loses nothing, and threads sleep soon when they wait
longer (BENCHMARKS.md).
"""

import math
import os
import time
from pathlib import Path

SETTINGS = {"GOMP_SPINCOUNT": "5000"}  # ignored by GNU OpenMP when OMP_WAIT_POLICY is set
MIN_WINDOW_S = 0.2  # other_work() measures at least this long


def prepare() -> bool:
    """Put SETTINGS into the environment unless already set, and start measuring other work.

    False when torch was already imported: its OpenMP runtime then keeps the settings it started with.
    """
    import sys

    for name, value in SETTINGS.items():
        os.environ.setdefault(name, value)
    global _last
    _last = _counters()
    return "torch" not in sys.modules


def available_cores() -> int:
    """The CPUs this process may run on (its affinity), limited by a cgroup v2 CPU quota if any."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")  # x86 (Intel AMX, AVX-512 BF16), then Arm's BF16 extension


def native_bf16() -> str | None:
    """The CPU's bf16 instructions, as `/proc/cpuinfo` names them, with its model (`avx512_bf16 (AMD EPYC)`);
    None where it has none (bf16 would be emulated: slower than float32) or where Linux does not say."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = set()
    model = "CPU"
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
        elif key.strip() in ("model name", "CPU part") and model == "CPU":
            model = value.strip() or model
    found = next((flag for flag in BF16_FLAGS if flag in flags), None)
    return f"{found} ({model})" if found else None


def other_work() -> float | None:
    """How many of this process's cores other processes kept busy, on average, since the last call
    (or `prepare()`): the busy time of those cores in /proc/stat less this process's own CPU time,
    over the time between. None where /proc/stat cannot be read, or when no window was started."""
    global _last
    start = _last
    if start is None:
        return None
    now = _counters()
    if now[0] - start[0] < MIN_WINDOW_S:
        time.sleep(MIN_WINDOW_S - (now[0] - start[0]))
        now = _counters()
    _last = now
    wall, busy, own = (b - a for a, b in zip(start, now))
    return max(0.0, busy - own) / wall


def _counters() -> tuple[float, float, float] | None:
    """(monotonic seconds, busy seconds of the cores this process may use, this process's CPU seconds)."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
        allowed = os.sched_getaffinity(0)
    except (OSError, AttributeError):
        return None
    busy = 0
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in allowed:
            ticks = [int(v) for v in fields]
            busy += sum(ticks[:8]) - ticks[3] - ticks[4]  # user..steal, less idle and iowait
    own = os.times()
    return time.monotonic(), busy / os.sysconf("SC_CLK_TCK"), own.user + own.system


_last = None  # where the window of other_work() starts: prepare(), then each call
