"""The entry point: `python -m mnist_runner` / `mnist-runner`, and `train(*overrides)` from Python.

Hydra composes conf/ (one folder per config group: model, dataset, loss, optimizer, device, ...) into
one config, and `train_config(cfg)` runs it: a fresh run, or `resume=FOLDER` continuing one. How a
run ends becomes one line and an exit code in `reported` (or, from Python, the exception itself).
Importing this module imports neither Hydra nor torch, so `import mnist_runner`, `--help` and
`--cfg job` answer at once; the run's modules are imported when a run starts. The package exports
`train` (the function), so `mnist_runner.train` names it; `from mnist_runner.train import main` still
imports from this module.

Exit codes: 2 bad input, 1 failed (data or a crash), 3 diverged, 130/143 interrupted (SIGINT/SIGTERM;
140: SIGUSR2 in a cluster job, cluster.py).
In a multirun a job that fails is recorded in its summary.json and the sweep goes on; the sweep
summary (sweep.py) exits 1 at the end.
"""

import sys
import traceback
from contextlib import contextmanager
from pathlib import Path

from . import console, cpu, plugins
from .config import config_dir, quote_resume_args, resume_command, setup
from .hydra_errors import composing, user_wants_traceback


def main() -> None:
    """`python -m mnist_runner` / `mnist-runner`: import the plugins the command names (plugins.py), then Hydra.

    Bad input that Hydra or a plugin meets before the run starts ends the process with one line, exit 2.
    """
    from .registry import ConfigError

    cpu.prepare()  # OpenMP settings before anything imports torch; start measuring other work
    argv = quote_resume_args(sys.argv[1:])  # resume=FOLDER as it is, even with `=` or `,` in FOLDER
    if "--version" in argv:  # the runner's, not Hydra's
        print(version_line())
        return
    try:
        _compose_and_run(argv)
    except ConfigError as e:
        if user_wants_traceback():
            raise
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2)


def _compose_and_run(argv: list[str]) -> None:
    plugins.prepare(argv)
    setup()
    with composing(argv):
        _hydra_main(argv)


def version_line() -> str:
    """`mnist-runner 0.1.0 (torch 2.14.1, Hydra 1.3.8, Python 3.11.7)`, from package metadata (nothing imported)."""
    import platform
    from importlib import metadata

    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    from . import __version__

    return (
        f"mnist-runner {__version__} (torch {version('torch')}, Hydra {version('hydra-core')}, "
        f"Python {platform.python_version()})"
    )


def resume_main() -> None:
    """`mnist-runner-resume FOLDER [KEY=VALUE ...]`: a run folder is `mnist-runner resume=FOLDER [KEY=VALUE ...]`;
    a sweep folder is its sweep again, continued (continuing.py)."""
    from .continuing import sweep_command
    from .registry import ConfigError
    from .run_folder import RunFolder, find, is_sweep

    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        print(
            "usage: mnist-runner-resume FOLDER [KEY=VALUE ...]\n"
            "Continue the run in FOLDER from its last completed epoch, with the configuration stored in it, or\n"
            "the sweep in FOLDER: its finished jobs kept, the others continued or started, with the launcher it\n"
            "used; KEY=VALUE may change only what does not change the experiment, e.g. trainer.epochs=20 for a\n"
            "run, hydra/launcher=joblib for a sweep.",
            file=sys.stderr if not args else sys.stdout,
        )
        sys.exit(0 if args and args[0] in ("-h", "--help") else 2)
    folder = RunFolder(args[0])
    if not is_sweep(folder.path) and (folder.is_run or not find([folder.path])):  # a run (or nothing the runner made)
        sys.argv = [sys.argv[0], f"resume={args[0]}", *args[1:]]
        return main()
    try:
        sys.argv = [sys.argv[0], *sweep_command(args[0], args[1:])]
    except ConfigError as e:
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2)
    main()


def train(*overrides: str, output_dir=None):
    """Train as `python -m mnist_runner OVERRIDES` would, in this process; returns the run (results.Run).

    The overrides compose exactly as on the command line (the same plugins, presets and checks);
    `output_dir` replaces the timestamped folder under outputs/. Bad input raises ConfigError with the line
    the command would print, and leaves no run folder; data that cannot be read raises DataError, the run
    kept as `failed` (as the command keeps it); a run that diverges is
    returned with `status` diverged; Ctrl-C raises KeyboardInterrupt, the run kept for `resume=`.
    """
    from .results.runs import Run
    from .run_folder import RunFolder

    args = [str(o) for o in overrides]
    if any(a.startswith("-") for a in args):
        from .registry import ConfigError

        raise ConfigError(f"train() takes KEY=VALUE overrides only, not {[a for a in args if a.startswith('-')]}")
    if output_dir is not None:
        args.append(f"hydra.run.dir={Path(output_dir).resolve()}")
    cpu.prepare()
    global _captured
    _captured = captured = Captured()
    try:
        _compose_and_run(quote_resume_args(args))
    finally:
        _captured = None
    if captured.error is not None:
        raise captured.error
    return Run(RunFolder(captured.folder))


def _hydra_main(argv: list[str]) -> None:
    """Hydra's main on `argv` (Hydra reads sys.argv), with `hydra_task` as the task."""
    import hydra

    saved = sys.argv
    sys.argv = [saved[0] if saved else "mnist-runner", *argv]
    try:
        hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")(hydra_task)()
    finally:
        sys.argv = saved


class Captured:
    """What train() gets back from the task Hydra runs: the run's folder, and what it raised (Hydra would
    print it)."""

    folder: Path | None = None
    error: BaseException | None = None


_captured: Captured | None = None  # set while train() runs


def hydra_task(cfg) -> float:
    """The task Hydra runs: one job (in whichever process runs it)."""
    if _captured is None:
        return train_config(cfg)
    try:
        return train_config(cfg)
    except BaseException as e:  # raised by train(), after Hydra has restored what it set for the job
        _captured.error = e
        return float("nan")


def train_config(cfg) -> float:
    """Run the composed config in the folder Hydra made for it; returns the best test accuracy."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from .checkpoint import already_done, discard_fresh_folder, resume_config, signals_interrupt
    from .registry import ConfigError
    from .run import run
    from .run_folder import RunFolder

    hc = HydraConfig.get()
    choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra")}
    out, overrides, resumed_with = Path(hc.runtime.output_dir), list(hc.overrides.task), None
    multirun = hc.mode == RunMode.MULTIRUN
    with reported(lambda: out, multirun, raising=_captured is not None), signals_interrupt():
        plugins.load(cfg.get("plugins"))  # in every process that runs a job
        if multirun and not cfg.get("resume") and RunFolder(out).is_run:  # a continued sweep (continuing.py)
            cfg.resume = str(out)
        if cfg.get("resume"):  # continue that run in its own folder, with its stored config
            resumed_with = overrides
            discard_fresh_folder(out, cfg.resume)  # Hydra's new folder: nothing goes there
            cfg, choices, overrides = resume_config(cfg, overrides)
            out = Path(cfg.resume)
            if (done := already_done(cfg)) is not None:
                console.say(done)
                if _captured is not None:
                    _captured.folder = out
                return RunFolder(out).summary().get("best_test_acc", float("nan"))
            plugins.load(cfg.get("plugins"))  # the resumed run's own
        if _captured is not None:
            _captured.folder = out
        try:
            return run(cfg, out, choices, overrides, resumed_with)
        except ConfigError:  # refused: the error line is its record (bad data is a failed run, recorded)
            if not multirun and not cfg.get("resume"):  # a sweep's job keeps its folder
                discard_fresh_folder(out)
            raise
    return float("nan")  # a multirun job that did not finish (reported, and recorded in its summary.json)


@contextmanager
def reported(folder, multirun: bool, raising: bool = False):
    """Turn how a run ended into one clear line on stderr and the process's exit code.

    `folder()` gives the run folder (a resumed run's changes once its config is read). In a
    multirun the job returns NaN instead of exiting, so the other jobs go on. With `raising` (the
    Python API) bad input and crashes are raised as they are, and a diverged run returns.
    """
    from .checkpoint import Interrupted
    from .loops import Diverged
    from .registry import ConfigError, DataError

    try:
        yield
    except (ConfigError, DataError) as e:
        if raising or user_wants_traceback():
            raise
        console.warn(f"Error: {e}", folder() if multirun else None)  # a sweep's job keeps its folder and log
        if not multirun:
            sys.exit(2 if isinstance(e, ConfigError) else 1)
    except Diverged as e:
        console.warn(
            f"Diverged: {e} in epoch {e.epoch}; the run stopped (status diverged in {folder()}/summary.json)", folder()
        )
        if not multirun and not raising:
            sys.exit(3)
    except Interrupted as e:
        console.warn(
            f"Interrupted ({e}): the current epoch was abandoned; epochs completed so far are kept. "
            f"Resume with: {resume_command(folder())}",
            folder(),
        )
        if raising:
            raise KeyboardInterrupt(str(e)) from None
        sys.exit(e.exit_code)
    except Exception:
        if not multirun or raising:
            raise
        traceback.print_exc()  # recorded as failed in its summary.json; the other jobs go on
