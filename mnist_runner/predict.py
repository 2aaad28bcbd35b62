"""Classify image files with a trained run: `mnist-runner-predict RUN_FOLDER IMAGE... [--format json]`.

Each image (PNG, JPEG, ...) is converted as the run's training data was: to its channels
(grayscale or RGB), resized to its height and width, and normalized with the run's mean and std.
Prints the predicted class and its probability per image; `--format json` prints a list with every
class's probability too. MNIST-style digits are light on dark: `--invert` turns dark-on-light images
(a pen drawing on white paper) around first.
"""

import argparse
import json
import sys
from pathlib import Path

from .hydra_errors import user_wants_traceback
from .registry import ConfigError, DataError


def predict_images(folder, images: list[Path], invert: bool = False) -> list[dict]:
    """One result per image: its predicted class, the class index, its probability and every class's."""
    import numpy as np
    import torch

    from .eval import load_trained
    from .user_data import read_image

    run = load_trained(folder)
    channels, height, width = run.input_shape
    pixels = []
    for path in images:
        if not Path(path).is_file():
            raise ConfigError(f"{path}: no such image file")
        image = read_image(Path(path), channels, (height, width))
        pixels.append(255 - image if invert else image)
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
    for path, k, p in zip(images, predicted.tolist(), probabilities.tolist()):
        results.append(
            {
                "image": str(path),
                "class": run.class_names[k],
                "index": k,
                "probability": p[k],
                "probabilities": dict(zip(run.class_names, p)),
            }
        )
    return results


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mnist-runner-predict",
        description="Classify image files with a trained run: the predicted class and its probability per image.",
    )
    p.add_argument("folder", type=Path, metavar="RUN_FOLDER", help="a run folder the runner made")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files (PNG, JPEG, BMP, ...)")
    p.add_argument("--format", choices=["text", "json"], default="text", help="text (default) or json")
    p.add_argument("--invert", action="store_true", help="invert the images first (dark strokes on a light ground)")
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
            print(f"{r['image']}: {r['class']} ({r['probability']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
