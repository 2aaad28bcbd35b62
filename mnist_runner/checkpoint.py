"""Checkpoints, resume and interruption: a crash or a Ctrl-C never costs more than the current epoch.

After every epoch the run folder gets `checkpoints/last.pt` (written to a temporary file, then
renamed): model, optimizer, scheduler, every random number generator, the epoch, the global step and
the metric rows so far. It holds only tensors and plain Python values, so it loads with
`torch.load(..., weights_only=True)` and cannot run code.

`resume=PATH` continues the run in PATH from its last completed epoch with the configuration
stored in PATH/.hydra/config.yaml; overrides may change only the keys in `RESUMABLE`.
"""

import random
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from .files import replacing, write_atomic
from .registry import ConfigError
from .run_folder import CHECKPOINT, DamagedRun, RunFolder

# Keys a resumed run may change: they do not change what is being trained.
RESUMABLE = (
    "resume",
    "trainer.epochs",
    "trainer.progress",
    "trainer.threads",
    "trainer.compile",
    "report.plots",
    "dataset.root",
    "dataset.download",
    "device",
)


# --- checkpoints ---------------------------------------------------------------------------------


def save_checkpoint(
    folder: Path,
    *,
    epoch: int,
    step: int,
    rows: list[dict],
    model,
    optimizer,
    scheduler=None,
    generator: torch.Generator,
    augment_generator: torch.Generator | None = None,
) -> None:
    """Write checkpoints/last.pt whole or not at all."""
    state = {
        "epoch": epoch,
        "step": step,
        "rows": rows,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": _rng_state(generator, augment_generator),
    }
    path = Path(folder) / CHECKPOINT
    path.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(state, path)


def save_atomic(obj, path: Path) -> None:
    """torch.save whole or not at all: a temporary file, synced, then renamed over `path`."""
    with replacing(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(folder: Path, epochs: int) -> dict | None:
    """The last checkpoint of a run folder (on the CPU), or None when no epoch was completed.

    `epochs` is the run's `trainer.epochs`; it may not be fewer than the epochs already done.
    """
    path = Path(folder) / CHECKPOINT
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(f"resume={folder}: {path} cannot be read ({type(e).__name__}: {e})") from e
    if epochs < state["epoch"]:
        raise ConfigError(
            f"trainer.epochs={epochs} is not allowed with resume={folder}: that run has completed "
            f"{state['epoch']} epochs; give trainer.epochs >= {state['epoch']}"
        )
    return state


def restore(
    state: dict, *, model, optimizer, scheduler=None, generator: torch.Generator, augment_generator=None
) -> None:
    """Put model, optimizer, scheduler and every generator back as the checkpoint saw them."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"], generator, augment_generator)


def _rng_state(generator: torch.Generator, augment_generator: torch.Generator | None) -> dict:
    """Every generator's state as tensors and plain values (numpy and python states converted)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "shuffle": generator.get_state(),
        "augment": augment_generator.get_state() if augment_generator is not None else None,
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }


def _set_rng_state(rng: dict, generator: torch.Generator, augment_generator: torch.Generator | None) -> None:
    torch.set_rng_state(rng["torch"].cpu())
    generator.set_state(rng["shuffle"].cpu())
    if augment_generator is not None and rng.get("augment") is not None:
        augment_generator.set_state(rng["augment"].cpu())
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
    n = rng["numpy"]
    keys = n["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = rng["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))


def truncate_csv(path: Path, column: str, last: int) -> None:
    """Keep the header and the rows whose `column` is at most `last` (rows a resumed run redoes go)."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    if not lines:
        return
    index = lines[0].rstrip("\n").split(",").index(column)
    kept = [line for line in lines[1:] if line.endswith("\n") and int(line.split(",")[index]) <= last]
    if len(kept) != len(lines) - 1:
        write_atomic(path, lines[0] + "".join(kept))


# --- resume --------------------------------------------------------------------------------------


def resume_config(cfg, overrides: list[str]):
    """(config, choices, overrides) of the run in the `resume` folder, with the allowed changes.

    The config is the one stored in the folder, with the keys in RESUMABLE taken from this
    command line. Refuses (ConfigError) a folder that is not a run and an override that changes
    the experiment.
    """
    folder = RunFolder(str(cfg.resume))
    folder.require_config("resume")
    try:
        stored, hydra = folder.config(), folder.hydra()
        summary = folder.summary() if folder.is_run else {}
    except DamagedRun as e:
        raise ConfigError(f"resume={cfg.resume}: {e}") from None
    then_epochs = stored.trainer.epochs
    stored.trainer.epochs = summary.get("epochs_target", then_epochs)  # its current target, unless given anew
    choices = {k: v for k, v in hydra.runtime.choices.items() if not k.startswith("hydra")}
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if key in RESUMABLE or key.startswith("device."):
            OmegaConf.update(stored, key, OmegaConf.select(cfg, key), merge=False, force_add=True)
            continue
        if key in choices:  # a config group: compare the options chosen
            now, then = override.value(), choices[key]
        else:
            now, then = OmegaConf.select(cfg, key), OmegaConf.select(stored, key)
        if override.is_delete() or _plain(now) != _plain(then):
            raise ConfigError(
                f"{override.input_line} cannot be combined with resume={cfg.resume}: that run was "
                f"trained with {key}={_show(then)}; with resume only "
                f"{', '.join(RESUMABLE[1:])} may change"
            )
    OmegaConf.update(stored, "resume", str(cfg.resume), force_add=True)
    schedule = OmegaConf.select(stored, "scheduler.name")
    if schedule in ("onecycle", "cosine") and stored.trainer.epochs != then_epochs:
        raise ConfigError(
            f"trainer.epochs={stored.trainer.epochs} cannot change with resume={cfg.resume}: its "
            f"scheduler={schedule} spans the run's {then_epochs} epochs"
        )
    if "device" in choices and OmegaConf.select(stored, "device.type"):
        choices["device"] = stored.device.type
    return stored, choices, list(hydra.overrides.task)


def already_done(cfg) -> str | None:
    """For a resumed run that has nothing left to train (completed all of `cfg.trainer.epochs`): what to say,
    which changes nothing; None when it has epochs to train."""
    folder = RunFolder(str(cfg.resume))
    summary = folder.summary() if folder.is_run else {}
    done, stopped = summary.get("epochs_completed", 0), summary.get("early_stopping")
    if summary.get("status") != "completed" or cfg.trainer.epochs < done or (done < cfg.trainer.epochs and not stopped):
        return None  # fewer epochs than done is refused by load_checkpoint
    if stopped:
        return (
            f"The run in {folder.path} is complete: it stopped early after epoch {stopped['epoch']} "
            f"({stopped['reason']}); nothing changed."
        )
    schedule = OmegaConf.select(cfg, "scheduler.name")
    if schedule in ("onecycle", "cosine"):
        longer = f"Its scheduler={schedule} spans exactly these epochs: to train longer, start a new run"
    else:
        from .config import resume_command

        longer = f"To train it longer: {resume_command(folder.path)} trainer.epochs={done + 10}"
    return f"The run in {folder.path} is complete ({done} of {cfg.trainer.epochs} epochs); nothing changed. {longer}"


def _plain(value):
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def _show(value) -> str:
    value = _plain(value)
    return "(not set)" if value is None else str(value)


def discard_fresh_folder(fresh: Path, keep: Path | None = None) -> None:
    """Remove the folder Hydra made for this invocation, when it resumes another one (`keep`) or was refused
    before it trained, and its date folder and outputs/ when they hold nothing else. Never a folder that
    holds results (RunFolder.holds_results)."""
    fresh = Path(fresh).resolve()
    if (keep is not None and fresh == Path(keep).resolve()) or RunFolder(fresh).holds_results():
        return
    shutil.rmtree(fresh, ignore_errors=True)
    here = Path.cwd().resolve()
    for parent in fresh.parents:  # the date folder and outputs/, when this was their only run
        if here not in parent.parents:
            break
        try:
            parent.rmdir()
        except OSError:
            break


# --- interruption --------------------------------------------------------------------------------


class Interrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C), SIGTERM or (in a cluster job, cluster.py) SIGUSR2 arrived: the run stops,
    keeping its last checkpoint."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextmanager
def signals_interrupt(*signums: int):
    """Within the block the first of `signums` (default SIGINT and SIGTERM) to arrive raises
    `Interrupted`; later ones are ignored while the run records how it ended (a cluster sends
    SIGTERM after its warning signal). Yields a list that then holds that signal (main thread only)."""
    arrived: list[int] = []

    def handler(signum, frame):
        if not arrived:
            arrived.append(signum)
            raise Interrupted(signum)

    try:
        previous = {s: signal.signal(s, handler) for s in signums or (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave the handlers alone
        yield arrived
        return
    try:
        yield arrived
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
