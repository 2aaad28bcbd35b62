"""Every figure the runner draws, as PNG through matplotlib's Agg renderer.

Plain data in (lists, numpy arrays), a file out: no torch here, so `compare` and the sweep
summary can draw without importing it.

Drawn for speed as well as looks (a sweep draws six figures per job; measured in BENCHMARKS.md):
matplotlib is imported on the first figure; figures are made outside pyplot (no global figure list
to keep or clean up) and rendered by the Agg canvas; margins are fixed or computed rather than
found by a layout engine's extra drawing pass; an image grid is composed pixel by pixel with
Pillow (in matplotlib's font) rather than drawn as subplots; PNGs are written with light zlib
compression (the same pixels, somewhat larger files).
"""

import functools
import math
import textwrap
from pathlib import Path

import numpy as np

from .files import replacing

FIGURE_DPI = 100
PNG_OPTIONS = {"compress_level": 1}  # zlib level 1: about 4x faster to write than the default 6
# The axes of the 9 x 5.5 in loss and accuracy figures (left, bottom, width, height as fractions):
# fixed margins for their tick labels, axis labels and title, instead of a layout engine's extra pass.
CURVE_AXES = (0.9 / 9, 0.65 / 5.5, 1 - 1.15 / 9, 1 - 1.15 / 5.5)


def figure(**options):
    """A new matplotlib Figure drawn by the Agg canvas, outside pyplot (nothing to close)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**options)
    FigureCanvasAgg(fig)
    return fig


def colormap(name: str):
    from matplotlib import colormaps

    return colormaps[name]


def _pyplot():
    """pyplot on the Agg backend, for callers that make their figures with it."""
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def versus_axes(ax, key: str, x: list[float], ylabel: str) -> None:
    """Axes of final test accuracy against a swept numeric `key`: log scale over a decade or more, the
    swept values themselves as ticks when there are few."""
    if min(x) > 0 and max(x) / min(x) >= 10:
        ax.set_xscale("log")
    values = sorted(set(x))
    if len(values) <= 8:
        ax.set_xticks(values, [f"{v:g}" for v in values])
        ax.minorticks_off()
    ax.set_xlabel(key, fontsize=12)
    ax.set_ylabel(ylabel, fontsize=12)
    ax.set_title(f"Final test accuracy against {key}", fontsize=13)
    ax.grid(alpha=0.3, which="both")


def _save(fig, path: Path) -> None:
    """Write the PNG whole or not at all (a temporary file, then renamed): a kill never leaves half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=FIGURE_DPI, format="png", pil_kwargs=PNG_OPTIONS)
    if getattr(fig.canvas, "manager", None) is not None:  # a pyplot figure: release it
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
    from matplotlib.ticker import StrMethodFormatter

    fig = figure(figsize=(9, 5.5))
    ax = fig.add_axes(CURVE_AXES)
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


def plot_accuracy(rows: list[dict], path: Path, title: str):
    """Train and test accuracy per epoch (rows as in metrics.csv)."""
    fig = figure(figsize=(9, 5.5))
    ax = fig.add_axes(CURVE_AXES)
    epochs = [r["epoch"] for r in rows]
    ax.plot(epochs, [r["train_acc"] for r in rows], "o-", label="train accuracy (epoch mean)")
    ax.plot(epochs, [r["test_acc"] for r in rows], "s-", label="test accuracy")
    if "val_acc" in rows[0]:
        ax.plot(epochs, [r["val_acc"] for r in rows], "^--", label="validation accuracy")
    if len(epochs) <= 12:  # each test accuracy written beside its point, on the side away from the train line
        for r in rows:
            above = r["test_acc"] >= r["train_acc"]
            ax.annotate(
                f"{r['test_acc']:.4f}",
                (r["epoch"], r["test_acc"]),
                textcoords="offset points",
                xytext=(0, 8 if above else -9),
                ha="center",
                va="bottom" if above else "top",
                fontsize=9,
                color="tab:orange",
            )
        ax.margins(y=0.1)  # room for the labels at the top and the bottom
    _integer_epochs(ax, epochs)
    ax.set_xlabel("epoch", fontsize=12)
    ax.set_ylabel("accuracy (fraction correct)", fontsize=12)
    ax.set_title(f"Accuracy per epoch: {title}", fontsize=14)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=11, loc="lower right")
    _save(fig, path)
    return fig


def plot_images(
    images: np.ndarray, captions: list[str], path: Path, title: str, wrong: list[bool] | None = None
) -> None:
    """A grid of uint8 images (N, H, W) or (N, H, W, 3), 5 a row, each captioned; red when `wrong`.

    Composed pixel by pixel rather than as a matplotlib figure of 20 subplots (its Axes and text
    rendering are most of the cost): each image enlarged by a whole factor (each of its pixels a
    square of pixels) on white, the captions and the title drawn in matplotlib's own font.
    """
    from PIL import Image, ImageDraw

    n, cols = len(images), 5
    rows = max(1, math.ceil(n / cols))
    height, width = images.shape[1:3] if n else (28, 28)
    gap = round(0.2 * width)  # between neighbouring images, in image pixels
    scale = max(1, 1080 // (cols * (width + gap)))  # picture pixels per image pixel: about 10.8 in at 100 dpi
    lines = max([c.count("\n") + 1 for c in captions] or [1])
    caption = lines * 20 + 8  # caption lines at 11 pt, in picture pixels
    top = 60  # picture pixels for the title
    pitch_x, pitch_y = (width + gap) * scale, caption + (height + gap) * scale
    picture = np.full((top + rows * pitch_y, max(1100, cols * pitch_x + 20), 3), 255, dtype=np.uint8)
    left = (picture.shape[1] - cols * pitch_x) // 2 + gap * scale // 2
    corners = [(left + (i % cols) * pitch_x, top + (i // cols) * pitch_y + caption) for i in range(n)]
    for image, (x, y) in zip(images, corners):
        pixels = image if image.ndim == 3 else image[..., None]
        picture[y : y + height * scale, x : x + width * scale] = pixels.repeat(scale, 0).repeat(scale, 1)
    canvas = Image.fromarray(picture)
    draw = ImageDraw.Draw(canvas)
    for i, (x, y) in enumerate(corners):
        color = (214, 39, 40) if wrong and wrong[i] else (0, 0, 0)  # matplotlib's tab:red, black
        where = (x + width * scale / 2, y - 5)  # the caption's bottom centre
        draw.multiline_text(where, captions[i], fill=color, font=_font(11), anchor="md", align="center")
    if n == 0:
        draw.text((canvas.width / 2, canvas.height / 2), "none", fill=(0, 0, 0), font=_font(16), anchor="mm")
    draw.text((canvas.width / 2, 14), title, fill=(0, 0, 0), font=_font(14), anchor="ma")
    _save_picture(canvas, path)


def _save_picture(picture, path: Path) -> None:
    """Write a Pillow image as a PNG, whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        picture.save(tmp, format="png", **PNG_OPTIONS)


@functools.cache
def _font(points: int):
    """matplotlib's default font (DejaVu Sans) at `points` for FIGURE_DPI, as Pillow draws text."""
    from PIL import ImageFont

    size = round(points * FIGURE_DPI / 72)
    try:
        import matplotlib

        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), size)
    except OSError:
        return ImageFont.load_default(size)


def plot_confusion(matrix: np.ndarray, class_names: list[str], path: Path, title: str) -> None:
    """Counts of (true, predicted) pairs; colour is the share of the true class, so errors show.

    The margins are computed from the longest class name (about 0.62 em a character) rather than
    by a layout engine, which would measure every label in an extra drawing pass.
    """
    k = len(class_names)
    side = min(16, max(6, 0.45 * k + 3)) - 1.2  # the matrix, in inches
    tick_size = 10 if k <= 20 else 7
    longest = max(len(c) for c in class_names)
    names = longest * 0.62 * tick_size / 72  # inches
    rotate = longest > 3
    left, right, top = 0.45 + names + 0.1, 1.25, 0.5  # right: the colour bar, its ticks and label
    bottom = 0.45 + (0.71 * names + 0.15 if rotate else 1.4 * tick_size / 72) + 0.1
    width, height = left + side + right, bottom + side + top
    fig = figure(figsize=(width, height))
    ax = fig.add_axes((left / width, bottom / height, side / width, side / height))
    bar = fig.add_axes(((left + side + 0.2) / width, bottom / height, 0.25 / width, side / height))
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, cax=bar, label="share of the true class")
    ax.set_xticks(
        range(k),
        class_names,
        rotation=45 if rotate else 0,
        ha="right" if rotate else "center",
        rotation_mode="anchor" if rotate else "default",
        fontsize=tick_size,
    )
    ax.set_yticks(range(k), class_names, fontsize=tick_size)
    ax.set_xlabel("predicted class", fontsize=12)
    ax.set_ylabel("true class", fontsize=12)
    correct = int(np.trace(matrix))
    total = int(matrix.sum())
    ax.set_title(f"Confusion matrix (test, {correct}/{total} correct): {title}", fontsize=13)
    if k > 20:
        _save(fig, path)
        return
    # The counts, written into the rendered picture by Pillow in the same font: up to 400 texts
    # would be most of matplotlib's drawing time.
    from PIL import Image, ImageDraw

    fig.canvas.draw()
    picture = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])
    draw, font = ImageDraw.Draw(picture), _font(14 if k <= 4 else 9 if k <= 12 else 7)
    for (t, p), count in np.ndenumerate(matrix):
        if count:
            x, y = ax.transData.transform((p, t))  # pixels from the bottom left
            color = (255, 255, 255) if share[t, p] > 0.5 else (0, 0, 0)
            draw.text((x, picture.height - y), str(count), fill=color, font=font, anchor="mm")
    _save_picture(picture, path)


LEGEND_POINTS = 10
_CHAR = 0.54 * LEGEND_POINTS / 72  # inches a character of the legend takes, about (DejaVu Sans, measured)
_HANDLE = 0.7  # inches a legend entry takes besides its text: the line sample and the gaps (matplotlib's defaults)


def _legend_layout(labels: list[str], width: float) -> tuple[list[str], int, float]:
    """The legend below panels `width` inches wide: its labels (wrapped where one is wider than the figure), its
    columns (as many as the longest label allows), and the inches it needs. Any number of labels fits."""
    if not labels:
        return [], 1, 0.0
    fits = max(12, int((width - 0.8 - _HANDLE) / _CHAR))  # characters in one column as wide as the figure
    wrapped = [textwrap.fill(label, fits) for label in labels]
    longest = max(len(line) for label in wrapped for line in label.splitlines())
    columns = max(1, min(len(labels), int((width - 0.4) // (longest * _CHAR + _HANDLE))))
    rows = math.ceil(len(labels) / columns)
    per_column = [wrapped[c * rows : (c + 1) * rows] for c in range(columns)]  # matplotlib fills columns first
    lines = max(sum(label.count("\n") + 1 for label in column) for column in per_column)
    return wrapped, columns, 0.21 * lines + 0.3


def _panels(panels: int, labels: list[str], title: str):
    """A figure of `panels` panels side by side with the room its legend needs below them (fixed margins, not
    a layout engine's extra pass); (figure, axes, the labels to draw, a function that draws the legend)."""
    width = 6 * panels
    wrapped, columns, legend = _legend_layout(labels, width)
    height = 5 + legend
    fig = figure(figsize=(width, height))
    fig.subplots_adjust(
        left=0.9 / width, right=1 - 0.25 / width, bottom=(legend + 0.7) / height, top=1 - 0.8 / height, wspace=0.28
    )
    axes = fig.subplots(1, panels)
    fig.suptitle(title, fontsize=14, y=1 - 0.1 / height, va="top")

    def legend():
        if labels:
            anchor = (0.5, 0.05 / height)
            fig.legend(loc="lower center", bbox_to_anchor=anchor, ncols=columns, fontsize=LEGEND_POINTS, frameon=False)

    return fig, axes, wrapped, legend


def _epoch_axes(axes, epochs, what_suffix: str = "") -> None:
    """The test accuracy and test loss panels' axes."""
    for ax, what in zip(axes[:2], ("test accuracy", "test loss")):
        _integer_epochs(ax, epochs or [1])
        ax.set_xlabel("epoch", fontsize=12)
        ax.set_ylabel(what, fontsize=12)
        ax.set_title(f"{what.capitalize()} per epoch{what_suffix}", fontsize=13)
        ax.grid(alpha=0.3)


def plot_overlay(
    runs: list[tuple[str, list[dict]]],
    path: Path,
    title: str,
    versus: tuple[str, list[tuple[float, float]]] | None = None,
):
    """Test accuracy and test loss per epoch of several runs on shared axes; returns the figure.

    `runs`: (legend label, metrics rows). `versus`: (swept key, [(value, final test acc)]) adds a
    third panel for a sweep over one numeric key. The legend is below the panels, in the room
    its rows need.
    """
    fig, axes, labels, legend = _panels(3 if versus else 2, [label for label, _ in runs], title)
    cmap = colormap("tab10" if len(runs) <= 10 else "tab20")
    for i, (label, (_, rows)) in enumerate(zip(labels, runs)):
        color = cmap(i % cmap.N)
        style = "-" if i < cmap.N else "--"
        epochs = [r["epoch"] for r in rows]
        ms = 4 if len(epochs) > 1 else 8
        axes[0].plot(epochs, [r["test_acc"] for r in rows], style, marker="o", ms=ms, color=color, label=label)
        axes[1].plot(epochs, [r["test_loss"] for r in rows], style, marker="o", ms=ms, color=color)
    _epoch_axes(axes, [r["epoch"] for _, rows in runs for r in rows])
    if versus:
        key, points = versus
        points = sorted(points)
        ax = axes[2]
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", color="black")
        versus_axes(ax, key, [p[0] for p in points], "final test accuracy")
    legend()
    _save(fig, path)
    return fig


def plot_bands(
    groups: list[tuple[str, list[tuple[int, float, float]], list[tuple[int, float, float]]]],
    path: Path,
    title: str,
    versus: tuple[str, list[tuple[float, float, float]]] | None = None,
):
    """Per group, the mean test accuracy and test loss per epoch with a band of ±1 standard deviation; returns
    the figure.

    `groups`: (legend label, accuracy curve, loss curve), each curve (epoch, mean, sd). `versus`: (the
    group key, [(its value, mean final test accuracy, sd)]) adds a third panel. Laid out as plot_overlay.
    """
    fig, axes, labels, legend = _panels(3 if versus else 2, [g[0] for g in groups], title)
    cmap = colormap("tab10" if len(groups) <= 10 else "tab20")
    all_epochs = []
    for i, (label, (_, *curves)) in enumerate(zip(labels, groups)):
        color = cmap(i % cmap.N)
        style = "-" if i < cmap.N else "--"
        for ax, curve, name in zip(axes, curves, (label, None)):
            epochs = [c[0] for c in curve]
            mean, std = np.array([c[1] for c in curve]), np.array([c[2] for c in curve])
            all_epochs += epochs
            ax.plot(epochs, mean, style, marker="o", ms=4 if len(epochs) > 1 else 8, color=color, label=name)
            if len(epochs) > 1:
                ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.2, lw=0)
            else:
                ax.errorbar(epochs, mean, yerr=std, fmt="none", ecolor=color, capsize=6)
    _epoch_axes(axes, all_epochs, " (mean ± 1 sd over seeds)")
    if versus:
        key, points = versus
        x = [p[0] for p in points]
        axes[2].errorbar(x, [p[1] for p in points], yerr=[p[2] for p in points], fmt="o-", color="black", capsize=4)
        versus_axes(axes[2], key, x, "final test accuracy (mean ± 1 sd)")
    legend()
    _save(fig, path)
    return fig
