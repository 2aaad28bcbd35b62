"""One run, top to bottom: build everything the config names, train, and write the run folder."""

import json
import math
import os
import random
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch
import torchvision

from .checkpoint import (Interrupted, discard_fresh_folder, load_checkpoint, restore, resume_config, save_atomic,
                         save_checkpoint, signals_interrupt, truncate_csv)  # fmt: skip
from .data import DataError, load_data
from .devices import resolve_device
from .losses import build_loss, check_fit
from .models import build_model, count_parameters
from .optim import build_optimizer, build_scheduler
from .registry import ConfigError
from .speed import configure as configure_speed
from .files import write_atomic, write_json
from .report import METRIC_COLUMNS, MetricsLog, RunReport, model_summary
from .train import Diverged, evaluate, train_one_epoch
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
    torch.use_deterministic_algorithms(on)


def run(cfg, output_dir: Path, choices: dict, overrides: list[str], resumed_with: list[str] | None = None) -> float:
    """Train as configured, writing every output into `output_dir`; returns the best test accuracy.

    With `cfg.resume` set, `output_dir` is that run's folder and training continues from its last
    checkpoint (`resumed_with`: the overrides of this invocation, recorded in summary.json).
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    summary = {
        "status": "running",
        "choices": choices,
        "overrides": overrides,
        "seed": cfg.seed,
        "device": None,
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__},
        "epochs_completed": 0,
    }
    state = None
    try:  # bad input is refused before any data is loaded or anything written
        validate(cfg)
        if cfg.get("resume"):
            state = load_checkpoint(out, cfg.trainer.epochs)
            summary["resumed"] = _previous(out).get("resumed", []) + [
                {"from_epoch": state["epoch"] if state else 0, "overrides": resumed_with or []}
            ]
    except ConfigError as e:
        if not cfg.get("resume"):  # a resumed run's folder keeps its own record
            write_json(out / "summary.json", {**summary, "status": "failed", "error": str(e)})
        raise
    write_json(out / "summary.json", summary)
    rows: list[dict] = []
    report = None
    epoch = 0
    try:
        set_deterministic(bool(cfg.trainer.get("deterministic", False)))
        device = resolve_device(cfg.device.type)
        summary["device"] = str(device)
        speed = configure_speed(cfg.trainer, device)  # threads; channels_last, compile, amp checked
        summary["speed"] = speed.as_dict()
        seed_everything(cfg.seed)
        data = load_data(cfg.dataset, device, seed=cfg.seed)
        model = build_model(cfg.model, data.input_shape, data.num_classes).to(device)
        forward = speed.forward_model(model)  # what the loops call; shares the model's parameters
        loss_fn = build_loss(cfg.loss).to(device)
        check_fit(loss_fn, {k: choices.get(k) or cfg[k].name for k in ("loss", "dataset", "model")}, model, data)
        optimizer = build_optimizer(cfg.optimizer, model.parameters())
        steps_per_epoch = data.steps_per_epoch(cfg.trainer.batch_size)
        schedule = build_scheduler(cfg.scheduler, optimizer, cfg.trainer.epochs, steps_per_epoch)
        summary["params"] = count_parameters(model)
        summary["normalization"] = {"mean": data.mean, "std": data.std}
        write_atomic(out / "model_summary.txt", model_summary(model, data.prepare(data.train.images[:1])))
        report = RunReport(out, cfg, data, model, loss_fn, choices, overrides, _title(choices))

        trainer = cfg.trainer
        generator = torch.Generator().manual_seed(cfg.seed)
        val_columns = ["val_loss", "val_acc"] if data.val is not None else []
        if state is not None:  # continue after the last completed epoch, exactly as if never stopped
            restore(state, model=model, optimizer=optimizer, scheduler=schedule, generator=generator)
            epoch, rows = state["epoch"], state["rows"]
            summary["epochs_completed"] = epoch
        truncate_csv(out / "metrics.csv", "epoch", epoch)  # rows written after the checkpoint are redone
        truncate_csv(out / "train_steps.csv", "step", epoch * steps_per_epoch)
        metrics = MetricsLog(out / "metrics.csv", METRIC_COLUMNS + val_columns)
        for epoch in range(epoch + 1, trainer.epochs + 1):
            t0 = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            train = train_one_epoch(
                forward, data, loss_fn, optimizer, batch_size=trainer.batch_size, generator=generator,
                log_interval=trainer.log_interval, first_step=(epoch - 1) * steps_per_epoch, progress=trainer.progress,
                description=f"epoch {epoch}/{trainer.epochs}",
            )  # fmt: skip
            test_loss, test_acc = evaluate(forward, data, data.test, loss_fn, trainer.eval_batch_size)
            if not math.isfinite(test_loss):  # would make summary.json invalid JSON (NaN)
                raise Diverged(epoch * steps_per_epoch, test_loss, "test loss")
            row = {
                "epoch": epoch, "train_loss": train.loss, "train_acc": train.acc,
                "test_loss": test_loss, "test_acc": test_acc, "lr": lr,
                "epoch_seconds": round(time.perf_counter() - t0, 3),
            }  # fmt: skip
            if data.val is not None:
                row["val_loss"], row["val_acc"] = evaluate(forward, data, data.val, loss_fn, trainer.eval_batch_size)
            if schedule is not None:
                schedule.end_epoch()
            metrics.append(row)
            rows.append(row)
            report.epoch_end(train, row)
            save_checkpoint(out, epoch=epoch, step=epoch * steps_per_epoch, rows=rows, model=model,
                            optimizer=optimizer, scheduler=schedule, generator=generator)  # fmt: skip
            summary["epochs_completed"] = epoch
            write_json(out / "summary.json", summary)
            print(
                f"epoch {epoch}/{trainer.epochs}  train loss {train.loss:.4f} acc {train.acc:.4f}  "
                f"test loss {test_loss:.4f} acc {test_acc:.4f}  lr {lr:.4g}  {row['epoch_seconds']:.1f}s",
                flush=True,
            )
        save_atomic(model.state_dict(), out / "model.pt")
        summary["status"] = "completed"
    except Diverged as e:
        e.epoch = epoch
        summary.update(status="diverged", error=str(e), diverged={"epoch": epoch, "step": e.step})
        raise
    except KeyboardInterrupt:
        summary.update(status="interrupted")
        raise
    except Exception as e:
        summary.update(status="failed", error=f"{type(e).__name__}: {e}")
        raise
    finally:
        if rows:
            best = max(rows, key=lambda r: r["test_acc"])
            summary["final"] = {k: rows[-1][k] for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
            summary["best_test_acc"], summary["best_epoch"] = best["test_acc"], best["epoch"]
            if "val_acc" in rows[0]:  # the epoch a validation split would choose, and its test accuracy
                best_val = max(rows, key=lambda r: r["val_acc"])
                summary["best_val"] = {k: best_val[k] for k in ("epoch", "val_loss", "val_acc", "test_acc")}
        summary["wall_seconds"] = round(time.time() - started, 2)
        write_json(out / "summary.json", summary)
        if report is not None:
            report.finish(rows, summary)
    print(f"Output folder: {out.resolve()}", flush=True)
    return summary.get("best_test_acc", 0.0)


def _previous(out: Path) -> dict:
    """The summary.json a resumed run left, or {} when it has none that parses."""
    try:
        return json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def _title(choices: dict) -> str:
    return ", ".join(f"{v}" for k, v in choices.items() if k in ("model", "dataset"))


def run_from_hydra(cfg) -> float:
    """The Hydra task: run, and turn bad input into one clear line and exit code 2.

    Exit codes: 2 bad input, 1 failed (data or a crash), 3 diverged, 130/143 interrupted (SIGINT/SIGTERM).
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra")}
    out, overrides, resumed_with = Path(hc.runtime.output_dir), list(hc.overrides.task), None
    try:
        with signals_interrupt():
            if cfg.get("resume"):  # continue that run in its own folder, with its stored config
                resumed_with = overrides
                discard_fresh_folder(out, cfg.resume)  # Hydra's new folder: nothing goes there
                cfg, choices, overrides = resume_config(cfg, overrides)
                out = Path(cfg.resume)
            return run(cfg, out, choices, overrides, resumed_with)
    except (ConfigError, DataError) as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"Error: {e}", file=sys.stderr)
        if hc.mode == RunMode.MULTIRUN:  # recorded as failed; the other jobs go on (sweep.py exits 1 at the end)
            return float("nan")
        sys.exit(2 if isinstance(e, ConfigError) else 1)
    except Diverged as e:
        print(f"Diverged: {e} in epoch {e.epoch}; the run stopped (status diverged in {out}/summary.json)",
              file=sys.stderr, flush=True)  # fmt: skip
        if hc.mode != RunMode.MULTIRUN:
            sys.exit(3)
        return float("nan")  # recorded as diverged; the other jobs go on
    except Interrupted as e:
        print(f"Interrupted ({e}): the current epoch was abandoned; epochs completed so far are kept. "
              f"Resume with: python -m mnist_runner resume={out}", file=sys.stderr, flush=True)  # fmt: skip
        sys.exit(e.exit_code)
    except Exception:
        if hc.mode != RunMode.MULTIRUN:
            raise
        traceback.print_exc()  # recorded as failed in its summary.json; the other jobs go on
        return float("nan")
