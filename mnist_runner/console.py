"""What a run says: on the console, and in its folder's log, mnist_runner.log.

`say(text)` prints a line on stdout (an epoch, the output folder, a note), `warn(text)` on stderr (a
tracker that failed, a figure that could not be drawn, how the run ended); while a run is `logged`
into its folder, each line also goes into RUN_FOLDER/mnist_runner.log with its time, and so do the
Python warnings shown meanwhile. The lines are the runner's own logger's (`mnist_runner`), which
writes only there: Hydra's handlers (the console, its own copy of the job log) keep the libraries'
log records, as before.
"""

import logging
import sys
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path

from .run_folder import LOG

_log = logging.getLogger("mnist_runner")
_log.propagate = False  # printed here already: not again by Hydra's console handler
_log.addHandler(logging.NullHandler())  # nor by logging's last resort when no run is being logged
_log.setLevel(logging.INFO)


def say(text: str) -> None:
    print(text, flush=True)
    _log.info(text)


def warn(text: str, folder: Path | None = None) -> None:
    """`text` on stderr; into `folder`'s log too when given (a line said after the run's block, how it ended)."""
    print(text, file=sys.stderr, flush=True)
    with logged(folder) if folder is not None and Path(folder).is_dir() else nullcontext():
        _log.warning(text)


@contextmanager
def logged(folder: Path):
    """Within the block, what the run says (and the Python warnings shown) is appended to folder/mnist_runner.log."""
    handler = logging.FileHandler(Path(folder) / LOG, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(levelname)s] %(message)s"))
    _log.addHandler(handler)
    show = warnings.showwarning

    def show_and_log(message, category, filename, lineno, file=None, line=None):
        show(message, category, filename, lineno, file, line)
        _log.warning(warnings.formatwarning(message, category, filename, lineno, line).strip())

    warnings.showwarning = show_and_log
    try:
        yield
    finally:
        warnings.showwarning = show
        _log.removeHandler(handler)
        handler.close()
