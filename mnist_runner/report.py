"""What a run leaves in its folder: metrics.csv, summary.json, model_summary.txt, plots/."""

import os
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

from . import console
from .augment import Augmentation
from .files import write_atomic
from .run_folder import CONFUSION, PLOTS, STEPS, RunFolder

METRIC_COLUMNS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_seconds"]


class MetricsLog:
    """A CSV file (metrics.csv, train_steps.csv) appended whole rows at a time, flushed and synced."""

    def __init__(self, path: Path, columns: list[str]):
        self.path, self.columns = path, columns
        if not path.exists():
            write_atomic(path, ",".join(columns) + "\n")

    def append(self, *rows: dict) -> None:
        """Append `rows` with one write and one fsync (an epoch's logged steps come together)."""
        lines = "".join(",".join(_format(row[c]) for c in self.columns) + "\n" for row in rows)
        if not lines:
            return
        with open(self.path, "a") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())


def _format(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


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


STEP_COLUMNS = ["step", "examples_seen", "loss"]
GRID = 20  # images in samples.png, predictions.png, misclassified.png


class RunReport:
    """Everything a run reports besides metrics.csv and summary.json.

    While training: `train_steps.csv` (the loss every `trainer.log_interval` steps) and the logger's
    scalars, once per epoch. At the end: `confusion_matrix.csv` and the plots in `plots/`, drawn
    once (`report.plots=false` skips the plots).
    """

    def __init__(self, out: Path, cfg, data, model, loss_fn, choices: dict, overrides: list[str], title: str):
        from . import loggers

        self.folder, self.data, self.model, self.loss_fn, self.title = RunFolder(out), data, model, loss_fn, title
        self.batch_size, self.eval_batch_size = cfg.trainer.batch_size, cfg.trainer.eval_batch_size
        self.draw = bool(cfg.get("report", {}).get("plots", True))
        self.augment = Augmentation.of(cfg.get("augment"), data.train.images.device, int(cfg.seed))  # for samples.png
        self.augment_name = OmegaConf.select(cfg, "augment.name", default="none")
        self.steps_per_epoch = data.steps_per_epoch(self.batch_size)
        self.steps_log = MetricsLog(self.folder.file(STEPS), STEP_COLUMNS)
        self.loggers = loggers.start(cfg, self.folder.path, choices, overrides)  # logger=...: docs/trackers.md

    def examples_seen(self, step: int) -> int:
        epochs, within = divmod(step, self.steps_per_epoch)
        return epochs * len(self.data.train) + within * self.batch_size

    def epoch_end(self, stats, row: dict) -> None:
        """After each epoch: the logged steps to train_steps.csv, the epoch row to the logger."""
        steps = [{"step": step, "examples_seen": self.examples_seen(step), "loss": loss} for step, loss in stats.steps]
        self.steps_log.append(*steps)
        self.loggers.log_epoch(row, [(s["examples_seen"], s["loss"]) for s in steps])

    def finish(self, rows: list[dict], summary: dict) -> None:
        """At the end of the run: curves always; predictions and the confusion matrix when it completed.

        Then the loggers end, with the folder complete; each records in `summary["loggers"]` whether it
        logged the run (the caller saves summary.json again).
        """
        try:
            completed = summary.get("status") == "completed"
            predicted = self._predict() if completed else None
            if predicted is not None:
                self._write_confusion(predicted)
                summary["per_class_test_acc"] = per_class_accuracy(self.confusion(predicted), self.data.class_names)
            if self.draw and rows:
                self._draw(rows, predicted)
        except Exception as e:  # a plotting problem must not turn a finished run into a failed one
            console.warn(f"Warning: the report could not be completed: {type(e).__name__}: {e}")
        self.loggers.close(summary)  # a logger that fails is reported and recorded, never raised

    def _predict(self) -> torch.Tensor:
        from .loops import predict

        return predict(self.model, self.data, self.data.test, self.loss_fn, self.eval_batch_size)

    def confusion(self, predicted: torch.Tensor) -> torch.Tensor:
        return confusion_matrix(self.data.test.labels.cpu(), predicted, self.data.num_classes)

    def _write_confusion(self, predicted: torch.Tensor) -> None:
        write_atomic(self.folder.file(CONFUSION), confusion_csv(self.confusion(predicted), self.data.class_names))

    def _draw(self, rows: list[dict], predicted: torch.Tensor | None) -> None:
        from . import plots

        folder, title = self.folder.file(PLOTS), self.title
        steps = self.folder.steps()
        n = len(self.data.train)
        val = ["val_loss"] if "val_loss" in rows[0] else []
        epochs = [(r["epoch"] * n, r["train_loss"], r["test_loss"], *(r[k] for k in val)) for r in rows]
        plots.plot_loss(steps, epochs, folder / "loss.png", title)
        plots.plot_accuracy(rows, folder / "accuracy.png", title)
        if predicted is None:
            return
        names = self.data.class_names
        train, test = self.data.train, self.data.test
        samples, what = train.images[:GRID], "Training images"
        if self.augment is not None:  # as training saw them: distorted (drawn by a generator of its own)
            samples = self.augment.batch(samples.float() / 255).mul_(255).round_().to(torch.uint8)
            what = f"Augmented training images (augment={self.augment_name})"
        plots.plot_images(
            _pixels(samples),
            [f"label: {names[i]}" for i in train.labels[:GRID].tolist()],
            folder / "samples.png",
            f"{what} and their labels: {title}",
        )
        truth = test.labels.cpu()
        first = torch.arange(min(GRID, len(truth)))
        self._grid(
            first,
            predicted,
            truth,
            folder / "predictions.png",
            f"First {len(first)} test images, predicted and true labels: {title}",
        )
        wrong = torch.nonzero(predicted != truth).flatten()[:GRID]
        self._grid(
            wrong,
            predicted,
            truth,
            folder / "misclassified.png",
            f"First {len(wrong)} misclassified test images: {title}"
            if len(wrong)
            else f"No misclassified test images: {title}",
        )
        plots.plot_confusion(self.confusion(predicted).numpy(), names, folder / "confusion_matrix.png", title)

    def _grid(self, index: torch.Tensor, predicted, truth, path: Path, title: str) -> None:
        from . import plots

        names = self.data.class_names
        p, t = predicted[index].tolist(), truth[index].tolist()
        images = _pixels(self.data.test.images[index.to(self.data.test.images.device)])
        plots.plot_images(
            images,
            [f"predicted: {names[a]}\ntrue: {names[b]}" for a, b in zip(p, t)],
            path,
            title,
            wrong=[a != b for a, b in zip(p, t)],
        )


def confusion_matrix(truth: torch.Tensor, predicted: torch.Tensor, k: int) -> torch.Tensor:
    """(k, k) counts on the CPU: row = true class, column = predicted class."""
    return torch.bincount(truth * k + predicted, minlength=k * k).reshape(k, k)


def per_class_accuracy(matrix: torch.Tensor, names: list[str]) -> dict:
    """Each class's share of its test examples predicted right (None for a class with none), by name."""
    totals = matrix.sum(dim=1)
    return {name: (matrix[i, i].item() / totals[i].item() if totals[i] else None) for i, name in enumerate(names)}


def _pixels(images: torch.Tensor):
    """uint8 (N, C, H, W) on any device -> numpy (N, H, W) for gray or (N, H, W, 3) for colour."""
    images = images.cpu()
    return (images[:, 0] if images.shape[1] == 1 else images.permute(0, 2, 3, 1)).numpy()


def confusion_csv(matrix: torch.Tensor, names: list[str]) -> str:
    """confusion_matrix.csv: a row per true class, a column per predicted class."""
    lines = [",".join(["true/predicted", *map(_csv_cell, names)])]
    lines += [",".join([_csv_cell(name), *map(str, row)]) for name, row in zip(names, matrix.tolist())]
    return "\n".join(lines) + "\n"


def _csv_cell(text: str) -> str:
    text = str(text)
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\n') else text
