"""Every figure the runner draws, as PNG through matplotlib's Agg backend.

Plain data in (lists, numpy arrays), a file out: no torch here, so `compare` and the sweep
summary can draw without importing it.
"""

import math
from pathlib import Path

import numpy as np

from .files import replacing

FIGURE_DPI = 100


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    """Write the PNG whole or not at all (a temporary file, then renamed): a kill never leaves half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=FIGURE_DPI, format="png")
    _pyplot().close(fig)


def _integer_epochs(ax, epochs) -> None:
    """Whole epochs on the x axis; a single epoch is centred rather than drawn at a fractional scale."""
    from matplotlib.ticker import MaxNLocator

    epochs = sorted(set(epochs))
    if len(epochs) == 1:
        ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
        ax.set_xticks(epochs)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_loss(steps: list[tuple[int, float]], epochs: list[tuple[int, float, float]], path: Path, title: str) -> None:
    """Training loss at every logged step and test loss after every epoch, against examples seen.

    `steps`: (examples_seen, loss); `epochs`: (examples_seen, train_loss, test_loss[, val_loss]).
    """
    plt = _pyplot()
    from matplotlib.ticker import StrMethodFormatter

    fig, ax = plt.subplots(figsize=(9, 5.5), layout="constrained")
    if steps:
        x, y = zip(*steps)
        ax.plot(x, y, "-", color="tab:blue", lw=1, alpha=0.85, label="train loss (logged steps)")
    else:  # fewer steps than trainer.log_interval per run: the epoch means are all there is
        ax.plot([e[0] for e in epochs], [e[1] for e in epochs], "o-", color="tab:blue", label="train loss (epoch mean)")
    ax.plot(
        [e[0] for e in epochs],
        [e[2] for e in epochs],
        "o-",
        color="tab:red",
        ms=7,
        lw=2,
        label="test loss (after each epoch)",
    )
    if epochs and len(epochs[0]) > 3:  # a validation split: its loss too
        ax.plot(
            [e[0] for e in epochs],
            [e[3] for e in epochs],
            "s--",
            color="tab:green",
            ms=6,
            label="validation loss (after each epoch)",
        )
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("training examples seen", fontsize=12)
    ax.set_ylabel("loss", fontsize=12)
    ax.set_title(f"Loss: {title}", fontsize=14)
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=11)
    _save(fig, path)


def plot_accuracy(rows: list[dict], path: Path, title: str) -> None:
    """Train and test accuracy per epoch (rows as in metrics.csv)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.5), layout="constrained")
    epochs = [r["epoch"] for r in rows]
    ax.plot(epochs, [r["train_acc"] for r in rows], "o-", label="train accuracy (epoch mean)")
    ax.plot(epochs, [r["test_acc"] for r in rows], "s-", label="test accuracy")
    if "val_acc" in rows[0]:
        ax.plot(epochs, [r["val_acc"] for r in rows], "^--", label="validation accuracy")
    for x, y in zip(epochs, [r["test_acc"] for r in rows]):
        if len(epochs) <= 12:
            ax.annotate(
                f"{y:.4f}",
                (x, y),
                textcoords="offset points",
                xytext=(0, -16),
                ha="center",
                fontsize=9,
                color="tab:orange",
            )
    _integer_epochs(ax, epochs)
    ax.set_xlabel("epoch", fontsize=12)
    ax.set_ylabel("accuracy (fraction correct)", fontsize=12)
    ax.set_title(f"Accuracy per epoch: {title}", fontsize=14)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=11, loc="lower right")
    _save(fig, path)


def plot_images(
    images: np.ndarray, captions: list[str], path: Path, title: str, wrong: list[bool] | None = None
) -> None:
    """A 4x5 grid of uint8 images (N, H, W) or (N, H, W, 3), each captioned; red when `wrong`."""
    plt = _pyplot()
    n = len(images)
    cols = 5
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(11, 2.55 * rows + 0.7), layout="constrained")
    for i, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i], cmap="gray" if images[i].ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        color = "tab:red" if wrong and wrong[i] else "black"
        ax.set_title(captions[i], fontsize=11, color=color)
    if n == 0:
        fig.text(0.5, 0.5, "none", ha="center", va="center", fontsize=16)
    fig.suptitle(title, fontsize=14)
    _save(fig, path)


def plot_confusion(matrix: np.ndarray, class_names: list[str], path: Path, title: str) -> None:
    """Counts of (true, predicted) pairs; colour is the share of the true class, so errors show."""
    plt = _pyplot()
    k = len(class_names)
    size = min(16, max(6, 0.45 * k + 3))
    fig, ax = plt.subplots(figsize=(size + 1.2, size), layout="constrained")
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if k <= 20:
        fontsize = 14 if k <= 4 else 9 if k <= 12 else 7
        for t in range(k):
            for p in range(k):
                if matrix[t, p]:
                    ax.text(
                        p,
                        t,
                        str(matrix[t, p]),
                        ha="center",
                        va="center",
                        fontsize=fontsize,
                        color="white" if share[t, p] > 0.5 else "black",
                    )
    long_names = max(len(c) for c in class_names) > 3
    ax.set_xticks(
        range(k),
        class_names,
        rotation=45 if long_names else 0,
        ha="right" if long_names else "center",
        fontsize=10 if k <= 20 else 7,
    )
    ax.set_yticks(range(k), class_names, fontsize=10 if k <= 20 else 7)
    ax.set_xlabel("predicted class", fontsize=12)
    ax.set_ylabel("true class", fontsize=12)
    correct = int(np.trace(matrix))
    total = int(matrix.sum())
    ax.set_title(f"Confusion matrix (test, {correct}/{total} correct): {title}", fontsize=13)
    _save(fig, path)


def plot_overlay(
    runs: list[tuple[str, list[dict]]],
    path: Path,
    title: str,
    versus: tuple[str, list[tuple[float, float]]] | None = None,
) -> None:
    """Test accuracy and test loss per epoch of several runs on shared axes.

    `runs`: (legend label, metrics rows). `versus`: (swept key, [(value, final test acc)]) adds a
    third panel for a sweep over one numeric key.
    """
    plt = _pyplot()
    panels = 3 if versus else 2
    legend_rows = min(len(runs), 12)
    fig = plt.figure(figsize=(6 * panels, 5 + 0.22 * legend_rows), layout="constrained")
    axes = fig.subplots(1, panels)
    cmap = plt.get_cmap("tab10" if len(runs) <= 10 else "tab20")
    for i, (label, rows) in enumerate(runs):
        color = cmap(i % cmap.N)
        style = "-" if i < cmap.N else "--"
        epochs = [r["epoch"] for r in rows]
        ms = 4 if len(epochs) > 1 else 8
        axes[0].plot(epochs, [r["test_acc"] for r in rows], style, marker="o", ms=ms, color=color, label=label)
        axes[1].plot(epochs, [r["test_loss"] for r in rows], style, marker="o", ms=ms, color=color)
    all_epochs = [r["epoch"] for _, rows in runs for r in rows]
    for ax, what in zip(axes[:2], ("test accuracy", "test loss")):
        _integer_epochs(ax, all_epochs)
        ax.set_xlabel("epoch", fontsize=12)
        ax.set_ylabel(what, fontsize=12)
        ax.set_title(f"{what.capitalize()} per epoch", fontsize=13)
        ax.grid(alpha=0.3)
    if versus:
        key, points = versus
        points = sorted(points)
        ax = axes[2]
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", color="black")
        positive = [p[0] for p in points if p[0] > 0]
        if len(positive) == len(points) and max(positive) / min(positive) >= 10:
            ax.set_xscale("log")
        values = sorted({p[0] for p in points})
        if len(values) <= 8:  # label the swept values themselves
            ax.set_xticks(values, [f"{v:g}" for v in values])
            ax.minorticks_off()
        ax.set_xlabel(key, fontsize=12)
        ax.set_ylabel("final test accuracy", fontsize=12)
        ax.set_title(f"Final test accuracy against {key}", fontsize=13)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(title, fontsize=14)
    if runs:
        fig.legend(loc="outside lower center", ncols=1 if len(runs) <= 6 else 2, fontsize=10, frameon=False)
    _save(fig, path)
