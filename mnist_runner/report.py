"""What a run leaves in its folder: metrics.csv, summary.json, model_summary.txt, plots/."""

import csv
import json
import os
from pathlib import Path

import torch
from torch import nn

METRIC_COLUMNS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_seconds"]


def write_atomic(path: Path, text: str) -> None:
    """Write a whole file or nothing: a reader never sees a half-written one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(data, indent=2) + "\n")


class MetricsLog:
    """metrics.csv, appended a whole row at a time (flushed and synced)."""

    def __init__(self, path: Path, columns: list[str]):
        self.path, self.columns = path, columns
        if not path.exists():
            write_atomic(path, ",".join(columns) + "\n")

    def append(self, row: dict) -> None:
        line = ",".join(_format(row[c]) for c in self.columns) + "\n"
        with open(self.path, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def _format(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def read_metrics(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _parse(text: str):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def model_summary(model: nn.Module, example: torch.Tensor) -> str:
    """A per-layer table (layer, output shape, parameters) as torchsummary prints it."""
    rows, hooks = [], []
    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]
    for name, module in leaves:
        def hook(module, inputs, output, name=name):
            params = sum(p.numel() for p in module.parameters(recurse=False))
            rows.append((f"{type(module).__name__}-{len(rows) + 1} ({name})", list(output.shape), params))

        hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        model(example)
    model.train(was_training)
    for h in hooks:
        h.remove()

    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    width = max([34] + [len(r[0]) + 2 for r in rows])
    line = "-" * (width + 36)
    out = [line, f"{'Layer (type)':>{width}}  {'Output Shape':>20}  {'Param #':>12}", "=" * len(line)]
    for name, shape, params in rows:
        shape[0] = -1
        out.append(f"{name:>{width}}  {str(shape):>20}  {params:>12,}")
    out += [
        "=" * len(line),
        f"Total params: {total:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {total - trainable:,}",
        line,
    ]
    return "\n".join(out) + "\n"


def plot_curves(rows: list[dict], folder: Path, title: str) -> None:
    """plots/loss.png and plots/accuracy.png: train and test per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    epochs = [r["epoch"] for r in rows]
    for key, label in (("loss", "Loss"), ("acc", "Accuracy")):
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
        ax.plot(epochs, [r[f"train_{key}"] for r in rows], "o-", label=f"train {label.lower()}")
        ax.plot(epochs, [r[f"test_{key}"] for r in rows], "s-", label=f"test {label.lower()}")
        ax.set(xlabel="epoch", ylabel=label, title=f"{label} per epoch: {title}")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / ("loss.png" if key == "loss" else "accuracy.png"))
        plt.close(fig)
