"""Classify image files with a trained run: `mnist-runner-predict RUN_FOLDER IMAGE... [--format json]`.

Each image (PNG, JPEG, ...) is converted as the run's training data was: to its channels
(grayscale or RGB), resized to its height and width, and normalized with the run's mean and std.
Prints the predicted class and its probability per image; `--format json` prints a list with every
class's probability too.

MNIST-style digits are light on dark. An image whose background (its border) is light while the run's
training images had a dark one (summary.json's `data.background`; dark for a run that did not record
it) is a pen drawing on white paper: it is inverted first, and the result says so (`inverted`, and
why). `--invert` inverts every image, `--no-invert` none.
"""

import argparse
import json
import sys
from pathlib import Path

from .hydra_errors import user_wants_traceback
from .registry import ConfigError, DataError


def predict_images(folder, images: list[Path], invert: bool | None = None) -> list[dict]:
    """One result per image: its predicted class, the class index, its probability and every class's, and
    whether (and why) it was inverted: `invert` True or False for every image, None to decide by its background."""
    import numpy as np
    import torch

    from .eval import load_trained
    from .user_data import read_image

    run = load_trained(folder)
    channels, height, width = run.input_shape
    trained_on = (run.summary.get("data") or {}).get("background", "dark")
    pixels, inverted = [], []
    for path in images:
        if not Path(path).is_file():
            raise ConfigError(f"{path}: no such image file")
        image = read_image(Path(path), channels, (height, width))
        why = _why_invert(image, trained_on) if invert is None else ("--invert" if invert else None)
        pixels.append(255 - image if why else image)
        inverted.append(why)
    batch = torch.from_numpy(np.stack(pixels)).reshape(len(pixels), channels, height, width)
    x = batch.float().mul_(1.0 / (255.0 * run.std))  # as data.Data.prepare normalizes
    if run.mean:
        x = x.sub_(run.mean / run.std)
    with torch.inference_mode():
        logits = run.model(x)
        predicted = run.loss_fn.predict(logits)
        if logits.shape[1] == 1:  # one score: the probability of the second class is its sigmoid
            second = torch.sigmoid(logits[:, 0])
            probabilities = torch.stack([1 - second, second], dim=1)
        else:
            probabilities = logits.float().softmax(dim=1)
    results = []
    for path, k, p, why in zip(images, predicted.tolist(), probabilities.tolist(), inverted):
        results.append(
            {
                "image": str(path),
                "class": run.class_names[k],
                "index": k,
                "probability": p[k],
                "probabilities": dict(zip(run.class_names, p)),
                "inverted": why is not None,
                **({"inverted_because": why} if why else {}),
            }
        )
    return results


def _why_invert(image, trained_on: str) -> str | None:
    """Why `image` is inverted before it is classified: its background is not the training images' (None: it is)."""
    from .data import background

    seen = background(image)
    return None if seen == trained_on else f"its background is {seen}, the training images' {trained_on}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mnist-runner-predict",
        description="Classify image files with a trained run: the predicted class and its probability per image.",
    )
    p.add_argument("folder", type=Path, metavar="RUN_FOLDER", help="a run folder the runner made")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files (PNG, JPEG, BMP, ...)")
    p.add_argument("--format", choices=["text", "json"], default="text", help="text (default) or json")
    invert = p.add_mutually_exclusive_group()
    invert.add_argument(
        "--invert",
        dest="invert",
        action="store_const",
        const=True,
        help="invert every image first (default: each whose background is light, the training images' dark)",
    )
    invert.add_argument("--no-invert", dest="invert", action="store_const", const=False, help="invert no image")
    return p


def main(argv: list[str] | None = None) -> int:

    args = parser().parse_args(argv)
    try:
        results = predict_images(args.folder, args.images, args.invert)
    except (ConfigError, DataError) as e:
        if user_wants_traceback():
            raise
        print(f"Error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1
    if args.format == "json":
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            note = f"  (inverted: {r['inverted_because']})" if r.get("inverted_because") else ""
            print(f"{r['image']}: {r['class']} ({r['probability']:.4f}){note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
