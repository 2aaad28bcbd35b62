"""OpenMP's environment, set before torch starts its OpenMP runtime (which reads it only then).

PyTorch's CPU kernels run in OpenMP parallel regions, dozens per training step of a small model,
and each region waits for all of its threads. Between regions GNU OpenMP's idle threads spin
(GOMP_SPINCOUNT, 300,000 rounds by default) so as to start the next one at once. On a machine whose
cores are also busy with other work, a spinning thread holds a core that the thread it waits for
needs: with 2 threads on 2 busy cores a LeNet-5 step took 6-14x as long as with 1 thread
(BENCHMARKS.md). With `OMP_WAIT_POLICY=PASSIVE` idle threads sleep instead; the same step then
takes 1.5-2x as long as with 1 thread under that load, and using every core stays the right
default for a machine that is not that busy. Values already in the environment are kept.

`prepare()` runs first thing in the entry point (train.py), before torch is imported; processes
it starts (joblib's workers, submitit's jobs) inherit the setting.
"""

import os
import sys

SETTINGS = {"OMP_WAIT_POLICY": "PASSIVE"}


def prepare() -> bool:
    """Put SETTINGS into the environment unless already set; False when torch was imported before (too late)."""
    for name, value in SETTINGS.items():
        os.environ.setdefault(name, value)
    return "torch" not in sys.modules
