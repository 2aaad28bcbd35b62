"""One run, top to bottom: build the parts the config names, train them epoch by epoch, record the run folder.

- `build(cfg)` makes every part (device, data, model, loss, optimizer, schedule) and returns them together;
- `fit(parts, trainer, ...)` runs the epochs, calling `on_epoch` after each;
- `summarize(rows)` turns the metric rows into the summary's numbers;
- `RunRecord` keeps summary.json true at every moment (running, then completed, diverged,
  interrupted or failed), whatever ends the run;
- `run(...)` puts them together, with checkpoints, reports and resume.
"""

import math
import os
import random
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from . import console
from .augment import Augmentation
from .checkpoint import load_checkpoint, restore, save_atomic, save_checkpoint, truncate_csv
from .continuing import this_process
from .data import Data, background, load_data
from .devices import resolve_device
from .files import write_atomic
from .loops import Diverged, EpochStats, evaluate, train_one_epoch
from .losses import build_loss, check_fit
from .models import build_model, count_parameters
from .monitor import Monitor
from .optim import build_optimizer, build_scheduler
from .registry import ConfigError
from .report import METRIC_COLUMNS, MetricsLog, RunReport, model_summary
from .run_folder import BEST_MODEL, METRICS, MODEL, MODEL_SUMMARY, STEPS, DamagedRun, RunFolder, new_summary
from .search import Reporter
from .speed import Speed
from .speed import configure as configure_speed
from .validate import validate


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_deterministic(on: bool) -> None:
    """trainer.deterministic: PyTorch's deterministic algorithms (and cuBLAS's setting) on GPUs."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = on
    if torch.are_deterministic_algorithms_enabled() != on:  # the call imports torch._dynamo (~1-2 s)
        torch.use_deterministic_algorithms(on)


@dataclass
class Parts:
    """Everything a run trains with, built from its config."""

    device: torch.device
    speed: Speed
    data: Data
    model: torch.nn.Module
    forward: torch.nn.Module  # what the loops call; shares the model's parameters
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: object  # a scheduler wrapper, or None
    generator: torch.Generator  # the training order's random numbers
    augmentation: Augmentation | None  # the training batches' distortions (None: augment=none)
    steps_per_epoch: int

    def state(self) -> dict:
        """What a checkpoint saves and restores (checkpoint.save_checkpoint, restore)."""
        return {
            "model": self.model,
            "optimizer": self.optimizer,
            "scheduler": self.schedule,
            "generator": self.generator,
            "augment_generator": self.augmentation.generator if self.augmentation else None,
        }


def build(cfg, choices: dict, resumed_threads: int | None = None) -> Parts:
    """Build every part the (validated) config names, seeded with `cfg.seed`.

    `resumed_threads`: the CPU threads the run being resumed used, kept unless trainer.threads is set.
    """
    set_deterministic(bool(cfg.trainer.get("deterministic", False)))
    device = resolve_device(cfg.device.type)
    speed = configure_speed(cfg.trainer, device, resumed_threads)  # threads; channels_last, compile, amp checked
    seed_everything(cfg.seed)
    data = load_data(cfg.dataset, device, seed=cfg.seed)
    model = build_model(cfg.model, data.input_shape, data.num_classes).to(device)
    forward = speed.forward_model(model)
    loss_fn = build_loss(cfg.loss).to(device)
    check_fit(loss_fn, {k: choices.get(k) or cfg[k].name for k in ("loss", "dataset", "model")}, model, data)
    optimizer = build_optimizer(cfg.optimizer, model.parameters())
    steps_per_epoch = data.steps_per_epoch(cfg.trainer.batch_size)
    schedule = build_scheduler(cfg.scheduler, optimizer, cfg.trainer.epochs, steps_per_epoch)
    generator = torch.Generator().manual_seed(cfg.seed)
    augmentation = Augmentation.of(cfg.get("augment"), data.train.images.device, cfg.seed)
    return Parts(
        device, speed, data, model, forward, loss_fn, optimizer, schedule, generator, augmentation, steps_per_epoch
    )


EpochHook = Callable[[int, EpochStats, dict], bool | None]


def fit(parts: Parts, trainer, first_epoch: int, on_epoch: EpochHook) -> None:
    """Train epochs `first_epoch`..`trainer.epochs`; after each, `on_epoch(epoch, train_stats, row)`, which
    returns True to stop there (early stopping)."""
    data, forward, loss_fn, optimizer = parts.data, parts.forward, parts.loss_fn, parts.optimizer
    progress = trainer.progress and sys.stderr.isatty()  # a bar on a terminal; in a log file the epoch lines say it
    for epoch in range(first_epoch, trainer.epochs + 1):
        t0 = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train = train_one_epoch(
            forward,
            data,
            loss_fn,
            optimizer,
            batch_size=trainer.batch_size,
            generator=parts.generator,
            log_interval=trainer.log_interval,
            first_step=(epoch - 1) * parts.steps_per_epoch,
            progress=progress,
            description=f"epoch {epoch}/{trainer.epochs}",
            augment=parts.augmentation.batch if parts.augmentation else None,
        )
        test_loss, test_acc = evaluate(forward, data, data.test, loss_fn, trainer.eval_batch_size)
        if not math.isfinite(test_loss):  # would make summary.json invalid JSON (NaN)
            raise Diverged(epoch * parts.steps_per_epoch, test_loss, "test loss")
        row = {
            "epoch": epoch,
            "train_loss": train.loss,
            "train_acc": train.acc,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "lr": lr,
            "epoch_seconds": round(time.perf_counter() - t0, 3),
        }
        if data.val is not None:
            row["val_loss"], row["val_acc"] = evaluate(forward, data, data.val, loss_fn, trainer.eval_batch_size)
        if parts.schedule is not None:
            parts.schedule.end_epoch()
        if on_epoch(epoch, train, row):
            return


def summarize(rows: list[dict]) -> dict:
    """The summary's numbers from the metric rows: final, best test accuracy, and the validation choice."""
    if not rows:
        return {}
    best = max(rows, key=lambda r: r["test_acc"])
    numbers = {
        "final": {k: rows[-1][k] for k in ("train_loss", "train_acc", "test_loss", "test_acc")},
        "best_test_acc": best["test_acc"],
        "best_epoch": best["epoch"],
    }
    if "val_acc" in rows[0]:  # the epoch a validation split would choose, and its test accuracy
        best_val = max(rows, key=lambda r: r["val_acc"])
        numbers["best_val"] = {k: best_val[k] for k in ("epoch", "val_loss", "val_acc", "test_acc")}
    return numbers


class RunRecord:
    """summary.json of a run folder, kept true at every moment whatever ends the run.

    `ending()` wraps the training: the status becomes completed, diverged, interrupted or failed,
    the summary's numbers are computed from the rows so far, and the report is finished.
    """

    def __init__(self, folder: RunFolder, summary: dict):
        self.folder, self.summary = folder, summary
        self.rows: list[dict] = []
        self.report: RunReport | None = None
        self.monitor = Monitor(None)
        self.started = time.time()
        self.earlier: list[float] = []  # the wall seconds of a resumed run's earlier sessions

    def save(self) -> None:
        self.folder.write_summary(self.summary)

    def epoch_done(self, epoch: int) -> None:
        self.summary["epochs_completed"] = epoch
        self.save()

    @contextmanager
    def ending(self):
        summary = self.summary
        try:
            yield
            summary["status"] = "pruned" if "pruned" in summary else "completed"
        except Diverged as e:
            e.epoch = summary["epochs_completed"] + 1  # the epoch in progress
            summary.update(status="diverged", error=str(e), diverged={"epoch": e.epoch, "step": e.step})
            raise
        except KeyboardInterrupt:
            summary.update(status="interrupted")
            raise
        except Exception as e:
            summary.update(status="failed", error=f"{type(e).__name__}: {e}")
            raise
        finally:
            summary.update(summarize(self.rows), **self.monitor.record(self.rows))
            sessions = [*self.earlier, round(time.time() - self.started, 2)]
            summary.update(wall_seconds=round(sum(sessions), 2), wall_seconds_sessions=sessions)
            self.save()
            if self.report is not None:
                self.report.finish(self.rows, summary)  # adds per_class_test_acc and the loggers' record
                self.save()


def run(
    cfg,
    output_dir: Path,
    choices: dict,
    overrides: list[str],
    resumed_with: list[str] | None = None,
    on_epoch: EpochHook | None = None,
) -> float:
    """Train as configured, writing every output into `output_dir`; returns the best test accuracy.

    With `cfg.resume` set, `output_dir` is that run's folder and training continues from its last
    checkpoint (`resumed_with`: the overrides of this invocation, recorded in summary.json).
    `on_epoch(epoch, train_stats, row)`, when given, is called after each epoch is recorded.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    with console.logged(out):  # what the run says, into its folder's mnist_runner.log too
        folder = RunFolder(out)
        summary = new_summary(
            choices,
            overrides,
            seed=cfg.seed,
            device=None,
            versions=versions(),
            epochs_target=cfg.trainer.epochs,
            process=this_process(),
        )
        record = RunRecord(folder, summary)
        state, previous = _check(cfg, record, resumed_with)
        resumed_threads = (previous.get("speed") or {}).get("threads")
        record.earlier = earlier_sessions(previous, state["rows"] if state else [])
        record.summary["wall_seconds_sessions"] = record.earlier  # kept should this session be killed
        record.save()
        with record.ending():
            parts = build(cfg, choices, resumed_threads)
            model, data = parts.model, parts.data
            record.monitor = Monitor.of(cfg.trainer, data.val is not None)
            record.summary.update(
                device=str(parts.device),
                speed=parts.speed.as_dict(),
                params=count_parameters(model),
                normalization={"mean": data.mean, "std": data.std},
                data={  # for eval and predict
                    "input_shape": list(data.input_shape),
                    "classes": data.class_names,
                    "background": background(data.train.images[:1000]),
                },
            )
            write_atomic(folder.file(MODEL_SUMMARY), model_summary(model, data.prepare(data.train.images[:1])))
            record.report = RunReport(out, cfg, data, model, parts.loss_fn, choices, overrides, _title(choices))
            epoch = 0
            if state is not None:  # continue after the last completed epoch, exactly as if never stopped
                restore(state, **parts.state())
                epoch, record.rows = state["epoch"], state["rows"]
                record.summary["epochs_completed"] = epoch
            truncate_csv(folder.file(METRICS), "epoch", epoch)  # rows written after the checkpoint are redone
            truncate_csv(folder.file(STEPS), "step", epoch * parts.steps_per_epoch)
            val_columns = ["val_loss", "val_acc"] if data.val is not None else []
            metrics = MetricsLog(folder.file(METRICS), METRIC_COLUMNS + val_columns)
            fit(parts, cfg.trainer, epoch + 1, EpochEnd(parts, record, metrics, on_epoch))
            save_atomic(model.state_dict(), folder.file(MODEL))
        console.say(f"Output folder: {out.resolve()}")
        return record.summary.get("best_test_acc", 0.0)


class EpochEnd:
    """What happens after each epoch, in an order a kill at any moment leaves consistent: the row to
    metrics.csv, the logged steps and the trackers, the best weights when the epoch improved on the
    monitored metric, the checkpoint, summary.json, the console line; True when the run stops early."""

    def __init__(self, parts: Parts, record: RunRecord, metrics: MetricsLog, then: EpochHook | None = None):
        self.parts, self.record, self.metrics, self.then = parts, record, metrics, then
        self.reporter = Reporter.of_environment()  # a trial of an Optuna search with a pruner, else None

    def __call__(self, epoch: int, train: EpochStats, row: dict) -> bool:
        parts, record, folder = self.parts, self.record, self.record.folder
        self.metrics.append(row)
        record.rows.append(row)
        record.report.epoch_end(train, row)
        if record.monitor.best(record.rows) is row:  # before the checkpoint: a resume never lacks these weights
            save_atomic(parts.model.state_dict(), folder.file(BEST_MODEL))
        save_checkpoint(folder.path, epoch=epoch, step=epoch * parts.steps_per_epoch, rows=record.rows, **parts.state())
        stop = record.monitor.stop(record.rows)
        if stop:
            record.summary["early_stopping"] = {"epoch": epoch, "reason": stop}
        elif self.reporter is not None and (pruned := self.reporter.report(row)):  # an Optuna trial (search.py)
            record.summary["pruned"] = {"epoch": epoch, "reason": pruned}
            stop = f"pruned: {pruned}"
        record.epoch_done(epoch)
        console.say(
            f"epoch {epoch}/{record.summary['epochs_target']}  train loss {train.loss:.4f} acc {train.acc:.4f}  "
            f"test loss {row['test_loss']:.4f} acc {row['test_acc']:.4f}  lr {row['lr']:.4g}  "
            f"{row['epoch_seconds']:.1f}s"
        )
        if stop:
            console.say(f"Stopped after epoch {epoch}: {stop}")
        if self.then is not None:
            self.then(epoch, train, row)
        return bool(stop)


def _check(cfg, record: RunRecord, resumed_with: list[str] | None) -> tuple[dict | None, dict]:
    """Refuse bad input before any data is loaded or anything written; a resumed run's checkpoint and
    summary (None and {} for a fresh run).

    A fresh run refused here still gets a summary.json saying why; a resumed run's folder keeps its own.
    """
    try:
        validate(cfg)
        if not cfg.get("resume"):
            return None, {}
        previous = _previous(record.folder)
        state = load_checkpoint(record.folder.path, cfg.trainer.epochs)
        record.summary["resumed"] = previous.get("resumed", []) + [
            {"from_epoch": state["epoch"] if state else 0, "overrides": resumed_with or []}
        ]
        return state, previous
    except ConfigError as e:
        if not cfg.get("resume"):
            record.folder.write_summary({**record.summary, "status": "failed", "error": str(e)})
        raise


def earlier_sessions(previous: dict, rows: list[dict]) -> list[float]:
    """The wall seconds of each session a resumed run has had (from its summary.json); a session killed
    outright, which could not record its own, counts the seconds of the epochs it completed."""
    sessions = previous.get("wall_seconds_sessions")
    if sessions is None:  # a run from before the sessions were recorded
        sessions = [previous["wall_seconds"]] if "wall_seconds" in previous else []
    sessions = list(sessions)
    if previous and previous.get("status") == "running":  # the last session was killed before its end
        since = (previous.get("resumed") or [{"from_epoch": 0}])[-1]["from_epoch"]
        sessions.append(round(sum(r["epoch_seconds"] for r in rows if r["epoch"] > since), 2))
    return sessions


def versions() -> dict:
    """torch's version as it names itself (with its build, e.g. 2.14.1+cu130); torchvision's from its
    package metadata, so that a run that does not need torchvision does not import it (None: not installed)."""
    try:
        torchvision = metadata.version("torchvision")
    except metadata.PackageNotFoundError:
        torchvision = None
    return {"torch": torch.__version__, "torchvision": torchvision}


def _previous(folder: RunFolder) -> dict:
    """The summary.json of the run being resumed: {} for a job that never wrote one (cluster.py gives a
    lost job's folder its config); ConfigError for one that cannot be read."""
    if not folder.is_run:
        return {}
    try:
        return folder.summary()
    except DamagedRun as e:
        raise ConfigError(f"resume={folder.path}: {e}; mend or remove it to resume from the checkpoint") from None


def _title(choices: dict) -> str:
    return ", ".join(f"{v}" for k, v in choices.items() if k in ("model", "dataset"))
