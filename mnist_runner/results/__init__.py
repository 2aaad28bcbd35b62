"""Reading run folders and putting them side by side: `mnist-runner-compare`, the sweep summary and
the Python API's `load_runs` (docs/python.md) all stand on this package.

- `runs`: a run folder as read (`Run`), the runs below some folders (`Runs`, `load_runs`);
- `table`: one row per run, filtering, sorting, rendering, the diff of two runs;
- `groups` and `stats`: groups of seeds, their statistics and comparison with a baseline;
- `figures`: the overlay and the banded group plot (drawn by plots.py).

Reads files only (no torch), so it answers at once; pandas only for `Runs.frame()`, `.epochs()` and
`Run.metrics`.
"""

from .runs import Run, Runs, load_runs

__all__ = ["Run", "Runs", "load_runs"]
