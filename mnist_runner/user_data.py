"""Datasets from the user's own files, with no code, and from plugins' dataset builders.

- `dataset=npz dataset.path=FILE`: a NumPy .npz holding `x_train, y_train, x_test, y_test` (uint8
  images N x H x W or N x C x H x W, integer labels) and optionally `classes` (the class names).
- `dataset=image_folder dataset.path=DIR`: `DIR/train/<class>/*.png` and `DIR/test/<class>/*.png`
  (torchvision's ImageFolder layout), decoded once into memory, grayscale or RGB as
  `dataset.channels` says, resized to `dataset.size` when given.
- A plugin's `@register_dataset` builder returns the same arrays as a mapping (or a 4-tuple).

All of them are dataset builders: functions registered in the dataset registry that take the
dataset's own keys as keyword arguments and return arrays. `read_arrays` checks those arrays and
turns them into the splits `data.load_data` then selects from (`classes`, `per_class`,
`val_fraction`, `normalize`), like the built-in datasets.
"""

from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from .plugins import SHARED_DATASET_KEYS
from .registry import DATASETS, ConfigError, DataError

ARRAYS = ("x_train", "y_train", "x_test", "y_test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


Arrays = tuple[torch.Tensor, torch.Tensor]  # uint8 images (N, H, W) or (N, C, H, W), int64 labels (N,)


def read_arrays(builder, cfg) -> tuple[tuple[Arrays, Arrays], list[str]]:
    """((train, test), class names) from a dataset builder called with the dataset's own keys."""
    values = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    options = {k: v for k, v in values.items() if k not in SHARED_DATASET_KEYS and k != "name"}
    arrays = builder(**options)
    where = f"dataset={values['name']}"
    if values.get("path") is not None:
        where += f" (dataset.path={values['path']})"
    return splits_from_arrays(arrays, where)


def splits_from_arrays(arrays, where: str) -> tuple[tuple[Arrays, Arrays], list[str]]:
    """Check the arrays a dataset builder returned and make the two splits; `where` names the source."""
    if isinstance(arrays, (tuple, list)) and len(arrays) == len(ARRAYS):
        arrays = dict(zip(ARRAYS, arrays))
    if not hasattr(arrays, "keys"):
        raise DataError(
            f"{where}: the dataset builder returned {type(arrays).__name__}; it must return a mapping "
            f"with {', '.join(ARRAYS)} (and optionally classes), or those four arrays as a tuple"
        )
    missing = [k for k in ARRAYS if k not in arrays.keys()]
    if missing:
        raise DataError(
            f"{where} has no array {', '.join(map(repr, missing))}; it needs {', '.join(ARRAYS)} "
            f"(and optionally classes)"
        )
    x_train, x_test = _images(arrays["x_train"], "x_train", where), _images(arrays["x_test"], "x_test", where)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"{where}: x_train images have shape {_shape(x_train)} but x_test images {_shape(x_test)}; "
            f"both splits need images of one shape"
        )
    y_train = _labels(arrays["y_train"], "y_train", len(x_train), where)
    y_test = _labels(arrays["y_test"], "y_test", len(x_test), where)
    names = _class_names(arrays, y_train, y_test, where)
    return ((torch.from_numpy(x_train), y_train), (torch.from_numpy(x_test), y_test)), names


def _shape(images: np.ndarray) -> str:
    return "x".join(map(str, images.shape[1:]))


def _images(value, key: str, where: str) -> np.ndarray:
    images = np.asarray(value)
    if images.dtype != np.uint8:
        raise DataError(f"{where}: {key} has dtype {images.dtype}; images must be uint8 (pixel values 0-255)")
    if images.ndim == 4 and images.shape[1] not in (1, 3) and images.shape[3] in (1, 3):
        raise DataError(
            f"{where}: {key} has shape {images.shape}, channels last; images must be N x H x W or N x C x H x W "
            f"(convert with x.transpose(0, 3, 1, 2))"
        )
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[1] not in (1, 3)):
        raise DataError(
            f"{where}: {key} has shape {images.shape}; images must be N x H x W or N x C x H x W with C = 1 or 3"
        )
    if len(images) == 0:
        raise DataError(f"{where}: {key} holds no images")
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    return np.ascontiguousarray(images)


def _labels(value, key: str, n: int, where: str) -> torch.Tensor:
    labels = np.asarray(value)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(
            f"{where}: {key} has shape {labels.shape} and dtype {labels.dtype}; labels must be one integer "
            f"class index per image"
        )
    if len(labels) != n:
        raise DataError(f"{where}: {key} has {len(labels)} labels for {n} images")
    if labels.min() < 0:
        raise DataError(f"{where}: {key} holds label {labels.min()}; labels are class indices 0, 1, ...")
    return torch.from_numpy(labels.astype(np.int64))


def _class_names(arrays, y_train: torch.Tensor, y_test: torch.Tensor, where: str) -> list[str]:
    """The `classes` array's names, else the class indices 0..K-1 found in the labels."""
    top = int(max(y_train.max(), y_test.max()))
    if "classes" not in arrays.keys() or arrays["classes"] is None:
        return [str(k) for k in range(top + 1)]
    names = [str(c) for c in np.asarray(arrays["classes"]).reshape(-1).tolist()]
    if top >= len(names):
        split = "y_train" if int(y_train.max()) == top else "y_test"
        raise DataError(
            f"{where}: {split} holds label {top} but classes names {len(names)} classes; labels must be in "
            f"0..{len(names) - 1}"
        )
    return names


def check_selected_classes(classes, names: list[str], dataset: str) -> None:
    """`dataset.classes` against the classes the data turned out to have (known only once it is read)."""
    if classes is None:
        return
    classes = list(classes)
    if not (
        len(classes) >= 2
        and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < len(names) for c in classes)
        and len(set(classes)) == len(classes)
    ):
        raise ConfigError(
            f"dataset.classes={str(classes).replace(' ', '')} is not allowed; it must list at least two distinct "
            f"class indices in 0..{len(names) - 1} (dataset={dataset} has {len(names)} classes)"
        )


# --- the built-in file formats -------------------------------------------------------------------


def _existing(path, kind: str, example: str) -> Path:
    if path is None or str(path) == "":
        raise ConfigError(f"dataset.path is not set; give dataset.path={example}")
    found = Path(str(path)).expanduser()
    if kind == "file" and not found.is_file() or kind == "folder" and not found.is_dir():
        raise ConfigError(f"dataset.path={path} is not allowed; it must be an existing {kind} (e.g. {example})")
    return found


@DATASETS.register
def npz(path=None):
    """Arrays x_train, y_train, x_test, y_test (and optionally classes) from a NumPy .npz file."""
    file = _existing(path, "file", "digits.npz")
    try:
        with np.load(file, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files}
    except Exception as e:  # an empty, truncated or foreign file: numpy's and zipfile's errors alike
        raise DataError(f"dataset.path={path} cannot be read as an .npz file ({type(e).__name__}: {e})") from None


@DATASETS.register
def image_folder(path=None, channels=1, size=None):
    """DIR/train/<class>/* and DIR/test/<class>/* image files, one folder per class (ImageFolder's layout)."""
    root = _existing(path, "folder", "my_images (holding train/<class>/*.png and test/<class>/*.png)")
    if channels not in (1, 3):
        raise ConfigError(f"dataset.channels={channels} is not allowed; it must be 1 (grayscale) or 3 (RGB)")
    size = image_size(size)
    classes = {split: _class_folders(root, split) for split in ("train", "test")}
    if classes["train"] != classes["test"]:
        only_train = sorted(set(classes["train"]) - set(classes["test"]))
        only_test = sorted(set(classes["test"]) - set(classes["train"]))
        raise DataError(
            f"dataset.path={path}: train/ and test/ have different classes (only in train/: "
            f"{', '.join(only_train) or 'none'}; only in test/: {', '.join(only_test) or 'none'}); "
            f"both need the same class folders"
        )
    names = classes["train"]
    arrays = {"classes": np.array(names)}
    for split in ("train", "test"):
        files, labels = [], []
        for k, name in enumerate(names):
            found = sorted(p for p in (root / split / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError(
                    f"dataset.path={path}: {split}/{name}/ holds no image files ({', '.join(IMAGE_SUFFIXES)})"
                )
            files += found
            labels += [k] * len(found)
        images = [read_image(f, channels, size) for f in files]
        shapes = {im.shape for im in images}
        if len(shapes) > 1:
            first = images[0].shape
            other = next(i for i, im in enumerate(images) if im.shape != first)
            raise DataError(
                f"dataset.path={path}: images differ in size ({files[0]} is {_hw(first)}, {files[other]} is "
                f"{_hw(images[other].shape)}); set dataset.size=H or [H,W] to resize them all"
            )
        arrays[f"x_{split}"] = np.stack(images)
        arrays[f"y_{split}"] = np.array(labels, dtype=np.int64)
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise DataError(
            f"dataset.path={path}: train images are {_hw(arrays['x_train'].shape[1:])} but test images "
            f"{_hw(arrays['x_test'].shape[1:])}; set dataset.size=H or [H,W] to resize them all"
        )
    return arrays


def _hw(shape) -> str:
    h, w = shape[-2:]
    return f"{h}x{w}"


def _class_folders(root: Path, split: str) -> list[str]:
    folder = root / split
    if not folder.is_dir():
        raise DataError(f"dataset.path={root} has no {split}/ folder; it needs train/<class>/ and test/<class>/")
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise DataError(
            f"dataset.path={root}: {split}/ has no class folders; put each class's images in {split}/<class>/"
        )
    return names


def image_size(size) -> tuple[int, int] | None:
    """`dataset.size`: null, H (square) or [H, W] -> (H, W) or None."""
    if size is None:
        return None
    value = list(size) if isinstance(size, (list, tuple)) else [size, size]
    if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise ConfigError(
            f"dataset.size={str(size).replace(' ', '')} is not allowed; it must be null (keep the images' size), "
            f"a size H or [H,W] in pixels"
        )
    return value[0], value[1]


def read_image(path: Path, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    """One image file -> uint8 (H, W) for grayscale or (3, H, W) for RGB, resized to `size` (H, W) when given."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DataError(f"cannot read image {path}: {' '.join(str(e).split()) or type(e).__name__}") from None
    return pixels if channels == 1 else pixels.transpose(2, 0, 1)
