"""The entry point: `python -m mnist_runner` / `mnist-runner`.

Hydra composes conf/ (one folder per config group: model, dataset, loss, optimizer, device, ...) into
one config, and `train(cfg)` runs it: a fresh run, or `resume=FOLDER` continuing one. How a run ends
becomes one line and an exit code in `reported`. Kept free of torch imports so `--help` and
`--cfg job` answer at once; the run's modules are imported when a run starts.

Exit codes: 2 bad input, 1 failed (data or a crash), 3 diverged, 130/143 interrupted (SIGINT/SIGTERM;
140: SIGUSR2 in a cluster job, cluster.py).
In a multirun a job that fails is recorded in its summary.json and the sweep goes on; the sweep
summary (sweep.py) exits 1 at the end.
"""

import os
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path

import hydra

from . import cpu, plugins
from .config import config_dir, quote_resume_args, resume_command


def main() -> None:
    """`python -m mnist_runner` / `mnist-runner`: import the plugins the command names (plugins.py), then Hydra."""
    cpu.prepare()  # OpenMP settings before anything imports torch; start measuring other work
    sys.argv = quote_resume_args(sys.argv)  # resume=FOLDER as it is, even with `=` or `,` in FOLDER
    plugins.prepare(sys.argv[1:])
    compose_and_train()


def resume_main() -> None:
    """`mnist-runner-resume FOLDER [KEY=VALUE ...]`: the same as `mnist-runner resume=FOLDER [KEY=VALUE ...]`."""
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        print(
            "usage: mnist-runner-resume FOLDER [KEY=VALUE ...]\n"
            "Continue the run in FOLDER from its last completed epoch, with the configuration stored in it;\n"
            "KEY=VALUE may change only what does not change the experiment, e.g. trainer.epochs=20.",
            file=sys.stderr if not args else sys.stdout,
        )
        sys.exit(0 if args and args[0] in ("-h", "--help") else 2)
    sys.argv = [sys.argv[0], f"resume={args[0]}", *args[1:]]
    main()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def compose_and_train(cfg) -> float:
    return train(cfg)


def train(cfg) -> float:
    """Run the composed config in the folder Hydra made for it; returns the best test accuracy."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from .checkpoint import discard_fresh_folder, resume_config, signals_interrupt
    from .run import run

    hc = HydraConfig.get()
    choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra")}
    out, overrides, resumed_with = Path(hc.runtime.output_dir), list(hc.overrides.task), None
    multirun = hc.mode == RunMode.MULTIRUN
    with reported(lambda: out, multirun), signals_interrupt():
        plugins.load(cfg.get("plugins"))  # in every process that runs a job
        if cfg.get("resume"):  # continue that run in its own folder, with its stored config
            resumed_with = overrides
            discard_fresh_folder(out, cfg.resume)  # Hydra's new folder: nothing goes there
            cfg, choices, overrides = resume_config(cfg, overrides)
            out = Path(cfg.resume)
            plugins.load(cfg.get("plugins"))  # the resumed run's own
        return run(cfg, out, choices, overrides, resumed_with)
    return float("nan")  # a multirun job that did not finish (reported, and recorded in its summary.json)


@contextmanager
def reported(folder, multirun: bool):
    """Turn how a run ended into one clear line on stderr and the process's exit code.

    `folder()` gives the run folder (a resumed run's changes once its config is read). In a
    multirun the job returns NaN instead of exiting, so the other jobs go on.
    """
    from .checkpoint import Interrupted
    from .data import DataError
    from .loops import Diverged
    from .registry import ConfigError

    try:
        yield
    except (ConfigError, DataError) as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"Error: {e}", file=sys.stderr)
        if not multirun:
            sys.exit(2 if isinstance(e, ConfigError) else 1)
    except Diverged as e:
        print(
            f"Diverged: {e} in epoch {e.epoch}; the run stopped (status diverged in {folder()}/summary.json)",
            file=sys.stderr,
            flush=True,
        )
        if not multirun:
            sys.exit(3)
    except Interrupted as e:
        print(
            f"Interrupted ({e}): the current epoch was abandoned; epochs completed so far are kept. "
            f"Resume with: {resume_command(folder())}",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(e.exit_code)
    except Exception:
        if not multirun:
            raise
        traceback.print_exc()  # recorded as failed in its summary.json; the other jobs go on


if __name__ == "__main__":
    main()
