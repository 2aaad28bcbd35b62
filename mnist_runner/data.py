"""Datasets: loaded once through torchvision, then kept as uint8 tensors on the training device.

A batch is gathered by index from the resident tensor, then scaled and normalized on the device,
so the hot loop has no per-sample Python work and no PIL.

After loading, `load_data` applies the dataset config's selections, in this order: `classes`
(keep and relabel to 0..K-1), `per_class` (the first N of each class, in both splits),
`val_fraction` (a seeded hold-out from the training split), then `normalize`.
"""

from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision import datasets as tv

from .idx import check_raw_files  # names a missing or damaged file
from .registry import DATASETS, ConfigError


class DataError(RuntimeError):
    """Data files missing, unreadable or corrupt."""


@dataclass
class RawSplit:
    images: torch.Tensor  # uint8 (N, H, W)
    labels: torch.Tensor  # int64 (N,) class indices


@dataclass
class DatasetSource:
    """A registry entry: a torchvision dataset class and what its classes are called."""

    cls: type  # torchvision dataset class, read from ROOT/<cls.__name__>/raw/
    class_names: callable  # (**options) -> list[str]
    options: tuple[str, ...] = ()  # dataset config keys passed on to the class (e.g. `split`)
    transpose: bool = False  # EMNIST stores its images transposed

    @property
    def folder(self) -> str:
        return self.cls.__name__

    def load(self, root, train: bool, download: bool, **options) -> RawSplit:
        ds = self.cls(root=root, train=train, download=download, **options)
        images, labels = ds.data, ds.targets
        if labels.dim() == 2:  # QMNIST keeps 8 columns of metadata; the first is the class
            labels = labels[:, 0]
        if self.transpose:
            images = images.transpose(1, 2)
        return RawSplit(images.contiguous(), labels.long())


DIGITS = [str(d) for d in range(10)]

DATASETS.register("mnist")(DatasetSource(tv.MNIST, lambda: DIGITS))
DATASETS.register("fashion_mnist")(DatasetSource(tv.FashionMNIST, lambda: list(tv.FashionMNIST.classes)))
DATASETS.register("kmnist")(DatasetSource(tv.KMNIST, lambda: list(tv.KMNIST.classes)))
# QMNIST: the 60,000 training digits (MNIST's) and all 60,000 test digits (MNIST's 10,000 + 50,000).
DATASETS.register("qmnist")(DatasetSource(tv.QMNIST, lambda: DIGITS))
DATASETS.register("emnist")(
    DatasetSource(tv.EMNIST, lambda split: list(tv.EMNIST.classes_split_dict[split]), ("split",), transpose=True)
)


@dataclass
class Split:
    images: torch.Tensor  # uint8 (N, C, H, W) on the device
    labels: torch.Tensor  # int64 (N,) class indices on the device

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Data:
    train: Split
    test: Split
    class_names: list[str]
    mean: float  # normalization applied per batch: (x/255 - mean) / std
    std: float
    val: Split | None = None
    binary_labels: str = "pm1"  # how a binary loss reads class indices 0/1: pm1 = -1/+1

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def steps_per_epoch(self, batch_size: int) -> int:
        """Training batches in one pass over the training split (the last one may be short)."""
        return -(-len(self.train) // batch_size)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images -> normalized float32, on the device (in place after the conversion)."""
        x = images.float().mul_(1.0 / (255.0 * self.std))
        return x.sub_(self.mean / self.std) if self.mean else x

    def batches(self, split: Split, batch_size: int, generator: torch.Generator | None = None):
        """Yield (inputs, labels) batches; shuffled when a seeded generator is given."""
        n = len(split)
        order = None
        if generator is not None:
            order = torch.randperm(n, generator=generator).to(split.labels.device)
        for start in range(0, n, batch_size):
            if order is None:
                images = split.images[start : start + batch_size]
                labels = split.labels[start : start + batch_size]
            else:
                index = order[start : start + batch_size]  # index_select: ~10x faster than images[index] on CPU
                images, labels = split.images.index_select(0, index), split.labels.index_select(0, index)
            yield self.prepare(images), labels


def _read(source: DatasetSource, cfg, train: bool, options: dict) -> RawSplit:
    try:
        check_raw_files(source.cls, Path(cfg.root) / source.folder / "raw", cfg.download, DataError)
        return source.load(cfg.root, train=train, download=cfg.download, **options)
    except DataError:
        raise
    except (RuntimeError, OSError, ValueError, AssertionError, TypeError) as e:
        where = f"{cfg.root}/{source.folder}/raw"
        how = "download failed" if cfg.download else "download is off (dataset.download=false)"
        raise DataError(
            f"{cfg.name} could not be loaded from {where} ({how}: {' '.join(str(e).split()) or type(e).__name__}). "
            f"Point the runner at a folder that holds {source.folder}/raw/: "
            f"dataset.root=PATH or MNIST_RUNNER_DATA=PATH"
        ) from e


def select_classes(splits: list[RawSplit], names: list[str], classes) -> tuple[list[RawSplit], list[str]]:
    """Keep `classes` (in the order given) and relabel them 0..K-1; their names follow."""
    classes = [int(c) for c in classes]  # validate.py checked them against the dataset's classes
    lookup = torch.full((max(len(names), 1 + max(classes)),), -1, dtype=torch.long)
    lookup[classes] = torch.arange(len(classes))
    kept = []
    for s in splits:
        keep = lookup[s.labels] >= 0
        kept.append(RawSplit(s.images[keep], lookup[s.labels[keep]]))
    return kept, [names[c] for c in classes]


def first_per_class(split: RawSplit, n: int, names: list[str], which: str) -> RawSplit:
    """The first `n` examples of every class, in their original order (seed 002's subsample)."""
    picked = []
    for k, name in enumerate(names):
        index = (split.labels == k).nonzero().flatten()
        if len(index) < n:
            raise ConfigError(
                f"dataset.per_class={n} is larger than class {name!r} has in the {which} split "
                f"({len(index)}); choose at most {int(torch.bincount(split.labels, minlength=len(names)).min())}"
            )
        picked.append(index[:n])
    index = torch.cat(picked).sort().values
    return RawSplit(split.images[index], split.labels[index])


def hold_out(split: RawSplit, fraction: float, seed: int) -> tuple[RawSplit, RawSplit]:
    """(train, validation): a random `fraction` of the split, drawn with the run's seed."""
    n_val = round(len(split.labels) * fraction)
    if not 0 < n_val < len(split.labels):
        raise ConfigError(
            f"dataset.val_fraction={fraction} of {len(split.labels)} training examples leaves an empty split"
        )
    order = torch.randperm(len(split.labels), generator=torch.Generator().manual_seed(seed))
    val, train = order[:n_val].sort().values, order[n_val:].sort().values
    return RawSplit(split.images[train], split.labels[train]), RawSplit(split.images[val], split.labels[val])


def load_data(cfg, device: torch.device, seed: int = 0) -> Data:
    """Load both splits of the configured dataset onto `device` as uint8 tensors.

    `cfg` has passed `validate.validate`; only the checks that need the data are made here.
    """
    source = DATASETS.get(cfg.name)
    options = {key: cfg[key] for key in source.options}
    binary_labels = str(cfg.get("binary_labels", "pm1"))
    train, test = _read(source, cfg, True, options), _read(source, cfg, False, options)
    class_names = list(source.class_names(**options))

    if cfg.get("classes") is not None:
        (train, test), class_names = select_classes([train, test], class_names, cfg.classes)
    if cfg.get("per_class") is not None:
        n = int(cfg.per_class)
        train = first_per_class(train, n, class_names, "train")
        test = first_per_class(test, n, class_names, "test")
    val = None
    if cfg.get("val_fraction"):
        train, val = hold_out(train, float(cfg.val_fraction), seed)

    mean, std = 0.0, 1.0
    if cfg.normalize == "fixed":
        mean, std = float(cfg.mean), float(cfg.std)
    elif cfg.normalize == "auto":  # as seeds 003/004: over every pixel of the training split
        pixels = train.images.double() / 255.0
        mean, std = pixels.mean().item(), pixels.std().item()

    def to_device(split: RawSplit | None) -> Split | None:
        if split is None:
            return None
        return Split(split.images.unsqueeze(1).to(device), split.labels.to(device))

    return Data(to_device(train), to_device(test), class_names, mean, std, to_device(val), binary_labels)
