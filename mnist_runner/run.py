"""One run, top to bottom: build everything the config names, train, and write the run folder."""

import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchvision

from .data import DataError, load_data
from .devices import resolve_device
from .losses import build_loss
from .models import build_model, count_parameters
from .optim import build_optimizer
from .registry import ConfigError
from .report import METRIC_COLUMNS, MetricsLog, model_summary, plot_curves, write_json
from .train import Diverged, evaluate, train_one_epoch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run(cfg, output_dir: Path, choices: dict, overrides: list[str]) -> float:
    """Train as configured, writing every output into `output_dir`; returns the best test accuracy."""
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
    write_json(out / "summary.json", summary)
    rows: list[dict] = []
    try:
        device = resolve_device(cfg.device.type)
        summary["device"] = str(device)
        seed_everything(cfg.seed)
        data = load_data(cfg.dataset, device)
        model = build_model(cfg.model, data.input_shape, data.num_classes).to(device)
        loss_fn = build_loss(cfg.loss).to(device)
        optimizer = build_optimizer(cfg.optimizer, model.parameters())
        summary["params"] = count_parameters(model)
        summary["normalization"] = {"mean": data.mean, "std": data.std}
        (out / "model_summary.txt").write_text(model_summary(model, data.prepare(data.train.images[:1])))

        trainer = cfg.trainer
        generator = torch.Generator().manual_seed(cfg.seed)
        metrics = MetricsLog(out / "metrics.csv", METRIC_COLUMNS)
        for epoch in range(1, trainer.epochs + 1):
            t0 = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            train = train_one_epoch(
                model, data, loss_fn, optimizer, batch_size=trainer.batch_size, generator=generator,
                log_interval=trainer.log_interval, progress=trainer.progress,
                description=f"epoch {epoch}/{trainer.epochs}",
            )  # fmt: skip
            test_loss, test_acc = evaluate(model, data, data.test, loss_fn, trainer.eval_batch_size)
            row = {
                "epoch": epoch, "train_loss": train.loss, "train_acc": train.acc,
                "test_loss": test_loss, "test_acc": test_acc, "lr": lr,
                "epoch_seconds": round(time.perf_counter() - t0, 3),
            }  # fmt: skip
            metrics.append(row)
            rows.append(row)
            summary["epochs_completed"] = epoch
            print(
                f"epoch {epoch}/{trainer.epochs}  train loss {train.loss:.4f} acc {train.acc:.4f}  "
                f"test loss {test_loss:.4f} acc {test_acc:.4f}  lr {lr:.4g}  {row['epoch_seconds']:.1f}s",
                flush=True,
            )
        torch.save(model.state_dict(), out / "model.pt")
        summary["status"] = "completed"
    except Diverged as e:
        summary.update(status="diverged", error=str(e))
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
            plot_curves(rows, out / "plots", _title(choices))
        summary["wall_seconds"] = round(time.time() - started, 2)
        write_json(out / "summary.json", summary)
    print(f"Output folder: {out.resolve()}", flush=True)
    return summary.get("best_test_acc", 0.0)


def _title(choices: dict) -> str:
    return ", ".join(f"{v}" for k, v in choices.items() if k in ("model", "dataset"))


def run_from_hydra(cfg) -> float:
    """The Hydra task: run, and turn bad input into one clear line and exit code 2."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra")}
    try:
        return run(cfg, Path(hc.runtime.output_dir), choices, list(hc.overrides.task))
    except ConfigError as e:
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2)
    except DataError as e:
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(1)
