"""Datasets: read once from their IDX files, then kept as uint8 tensors on the training device.

The built-in datasets live where torchvision keeps them (`ROOT/<Folder>/raw/`, e.g. `MNIST/raw/`),
and are read directly from the uncompressed IDX files there (`idx.read_idx`): the same tensors
torchvision's dataset classes would give, without importing torchvision. torchvision is imported
only when a file is missing (to download it, with `dataset.download=true`) or the folder holds
torchvision's older `processed/*.pt` format.

A batch is gathered by index from the resident tensor, then scaled and normalized on the device,
so the hot loop has no per-sample Python work and no PIL.

After loading, `load_data` applies the dataset config's selections, in this order: `classes`
(keep and relabel to 0..K-1), `per_class` (the first N of each class, in both splits),
`val_fraction` (a seeded hold-out from the training split), then `normalize`.
"""

import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .idx import IdxError, read_idx
from .registry import DATASETS, ConfigError, DataError
from .rules import one_of
from .user_data import check_selected_classes, read_arrays


@dataclass
class RawSplit:
    images: torch.Tensor  # uint8 (N, H, W), or (N, C, H, W) for colour
    labels: torch.Tensor  # int64 (N,) class indices


@dataclass(frozen=True)
class DatasetSource:
    """A registry entry: a dataset in torchvision's layout, its files and what its classes are called."""

    folder: str  # torchvision's dataset class of the same name reads ROOT/<folder>/raw/
    files: Callable[..., tuple[str, str]]  # (train, **options) -> the images and labels files in raw/
    class_names: Callable[..., list[str]]  # (**options) -> list[str]
    stats: Callable[..., tuple[float, float]]  # (**options) -> the training split's pixel mean and std, in [0, 1]
    options: tuple[str, ...] = ()  # dataset config keys that choose the files (e.g. `split`)
    transpose: bool = False  # EMNIST stores its images transposed

    def load(self, root, train: bool, download: bool, **options) -> RawSplit:
        """Both tensors of one split: from the IDX files when they are there, else through torchvision."""
        raw = Path(root) / self.folder / "raw"
        paths = [raw / name for name in self.files(train, **options)]
        if all(p.is_file() for p in paths) and not (raw.parent / "processed").exists():
            images, labels = (torch.from_numpy(_read_idx(p)) for p in paths)
            _check_shapes(paths, images, labels)
        else:  # to download, or torchvision's legacy processed/*.pt files
            missing = [str(p) for p in paths if not p.is_file()]
            if missing and not download and not (raw.parent / "processed").exists():
                raise FileNotFoundError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing")
            from torchvision import datasets

            ds = getattr(datasets, self.folder)(root=root, train=train, download=download, **options)
            images, labels = ds.data, ds.targets
        if labels.dim() == 2:  # QMNIST keeps 8 columns of metadata; the first is the class
            labels = labels[:, 0]
        if self.transpose:
            images = images.transpose(1, 2)
        return RawSplit(images.contiguous(), labels.long())


def _read_idx(path: Path):
    try:
        return read_idx(path)
    except IdxError as e:
        raise DataError(f"{path} cannot be read: {e}. Delete it to download it again, or replace it") from None


def _check_shapes(paths: list[Path], images: torch.Tensor, labels: torch.Tensor) -> None:
    """What torchvision's readers check: uint8 images N x H x W, as many labels (a column or a table)."""
    if images.dtype != torch.uint8 or images.dim() != 3:
        raise DataError(
            f"{paths[0]} holds {images.dtype} of shape {list(images.shape)}; images must be uint8, N x H x W"
        )
    if labels.dim() not in (1, 2) or len(labels) != len(images):
        raise DataError(
            f"{paths[1]} holds labels of shape {list(labels.shape)}; {paths[0]} has {len(images)} images, "
            "one label (or one row) each is needed"
        )


def _mnist_files(train: bool) -> tuple[str, str]:
    split = "train" if train else "t10k"
    return f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"


def _qmnist_files(train: bool) -> tuple[str, str]:
    split = "train" if train else "test"
    return f"qmnist-{split}-images-idx3-ubyte", f"qmnist-{split}-labels-idx2-int"


def _emnist_files(train: bool, split: str) -> tuple[str, str]:
    prefix = f"emnist-{split}-{'train' if train else 'test'}"
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


# Class names as torchvision 0.29 lists them (FashionMNIST.classes, KMNIST.classes, EMNIST.classes_split_dict).
DIGITS = list(string.digits)
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
KUZUSHIJI = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]
_EMNIST_MERGED = set("cijklmopsuvwxyz")  # letters whose capital and small forms EMNIST merges
EMNIST_CLASSES = {
    "byclass": sorted(string.digits + string.ascii_letters),
    "bymerge": sorted(set(string.digits + string.ascii_letters) - _EMNIST_MERGED),
    "balanced": sorted(set(string.digits + string.ascii_letters) - _EMNIST_MERGED),
    "letters": ["N/A", *string.ascii_lowercase],
    "digits": DIGITS,
    "mnist": DIGITS,
}

# The pixel mean and standard deviation of each training split, scaled to [0, 1]: what normalize=fixed
# uses unless dataset.mean and dataset.std are given. Where each comes from (docs/configuration.md):
# MNIST and Fashion-MNIST are measured on ../shared/data (tests/test_data.py measures them again when the
# files are there); KMNIST's is the figure public KMNIST code uses, not measured here (no KMNIST offline);
# QMNIST's training split is MNIST's 60,000 training digits, reconstructed from NIST (Yadav & Bottou 2019),
# so MNIST's stand for it; EMNIST's are lightning-bolts' per split (pl_bolts/transforms/dataset_normalizations.py).
MNIST_STATS = (0.1307, 0.3081)
FASHION_STATS = (0.2860, 0.3530)
KMNIST_STATS = (0.1918, 0.3483)
EMNIST_STATS = {
    "byclass": (0.1736, 0.3316),
    "bymerge": (0.1736, 0.3316),
    "balanced": (0.1751, 0.3332),
    "letters": (0.1722, 0.3309),
    "digits": (0.1733, 0.3316),
    "mnist": (0.1733, 0.3317),
}

DATASETS.register("mnist")(DatasetSource("MNIST", _mnist_files, lambda: DIGITS, lambda: MNIST_STATS))
DATASETS.register("fashion_mnist")(DatasetSource("FashionMNIST", _mnist_files, lambda: FASHION, lambda: FASHION_STATS))
DATASETS.register("kmnist")(DatasetSource("KMNIST", _mnist_files, lambda: KUZUSHIJI, lambda: KMNIST_STATS))
# QMNIST: the 60,000 training digits (MNIST's) and all 60,000 test digits (MNIST's 10,000 + 50,000).
DATASETS.register("qmnist")(DatasetSource("QMNIST", _qmnist_files, lambda: DIGITS, lambda: MNIST_STATS))
DATASETS.register("emnist", rules={"split": one_of(*EMNIST_CLASSES)})(
    DatasetSource(
        "EMNIST",
        _emnist_files,
        lambda split: list(EMNIST_CLASSES[split]),
        lambda split: EMNIST_STATS[split],
        ("split",),
        transpose=True,
    )
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

    def prepare(self, images: torch.Tensor, augment=None) -> torch.Tensor:
        """uint8 images -> normalized float32, on the device (in place after the conversion). `augment`
        (a training batch's): a function of the batch scaled to [0, 1], applied before normalizing."""
        if augment is None:
            x = images.float().mul_(1.0 / (255.0 * self.std))
            return x.sub_(self.mean / self.std) if self.mean else x
        x = augment(images.float().mul_(1.0 / 255.0))  # zero, the padding, is black only before normalizing
        return x.sub_(self.mean).mul_(1.0 / self.std) if self.mean or self.std != 1.0 else x

    def batches(self, split: Split, batch_size: int, generator: torch.Generator | None = None, augment=None):
        """Yield (inputs, labels) batches; shuffled when a seeded generator is given, distorted by `augment`
        (Augmentation.batch) when given."""
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
            yield self.prepare(images, augment), labels


def background(pixels) -> str:
    """`light` or `dark`: the mean of the outermost rows and columns of uint8 images (H, W), (C, H, W) or
    a batch of them, against mid-grey. MNIST's digits are light on a dark background."""
    import numpy as np

    pixels = np.asarray(pixels.cpu() if isinstance(pixels, torch.Tensor) else pixels, dtype=np.float64)
    border = np.concatenate([pixels[..., 0, :], pixels[..., -1, :], pixels[..., :, 0], pixels[..., :, -1]], axis=-1)
    return "light" if border.mean() > 127.5 else "dark"


def _read(source: DatasetSource, cfg, train: bool, options: dict) -> RawSplit:
    try:
        return source.load(cfg.root, train=train, download=cfg.download, **options)
    except (DataError, ConfigError):
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
    for k in range(len(names)):
        index = (split.labels == k).nonzero().flatten()
        if len(index) < n:
            counts = torch.bincount(split.labels, minlength=len(names))
            fewest = int(counts.argmin())  # the class that limits per_class
            raise ConfigError(
                f"dataset.per_class={n} is larger than the {which} split has of class {names[fewest]!r} "
                f"({int(counts[fewest])}, the fewest of any class); choose at most {int(counts[fewest])}"
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


def fixed_normalization(source, cfg, options: dict) -> tuple[float, float]:
    """dataset.normalize=fixed: dataset.mean and dataset.std, each the dataset's own (its STATS) when null."""
    known = source.stats(**options) if isinstance(source, DatasetSource) else None
    if known is None and (cfg.mean is None or cfg.std is None):
        raise ConfigError(
            f"dataset.normalize=fixed needs dataset.mean and dataset.std for dataset={cfg.name} (it has no values "
            "of its own): give both, or dataset.normalize=auto to measure them on the training split"
        )
    return (
        float(known[0] if cfg.mean is None else cfg.mean),
        float(known[1] if cfg.std is None else cfg.std),
    )


def load_data(cfg, device: torch.device, seed: int = 0) -> Data:
    """Load both splits of the configured dataset onto `device` as uint8 tensors.

    `cfg` has passed `validate.validate`; only the checks that need the data are made here.
    """
    source = DATASETS.get(cfg.name)
    binary_labels = str(cfg.get("binary_labels", "pm1"))
    if isinstance(source, DatasetSource):
        options = {key: cfg[key] for key in source.options}
        train, test = _read(source, cfg, True, options), _read(source, cfg, False, options)
        class_names = list(source.class_names(**options))
    else:  # npz, image_folder and plugins' datasets: a builder returning arrays (user_data.py)
        (train_arrays, test_arrays), class_names = read_arrays(source, cfg)
        train, test = RawSplit(*train_arrays), RawSplit(*test_arrays)
        check_selected_classes(cfg.get("classes"), class_names, cfg.name)

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
        mean, std = fixed_normalization(source, cfg, options if isinstance(source, DatasetSource) else {})
    elif cfg.normalize == "auto":  # as seeds 003/004: over every pixel of the training split
        pixels = train.images.double() / 255.0
        mean, std = pixels.mean().item(), pixels.std().item()

    def to_device(split: RawSplit | None) -> Split | None:
        if split is None:
            return None
        images = split.images if split.images.dim() == 4 else split.images.unsqueeze(1)  # (N, C, H, W)
        return Split(images.to(device), split.labels.to(device))

    return Data(to_device(train), to_device(test), class_names, mean, std, to_device(val), binary_labels)
