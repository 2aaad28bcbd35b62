"""Datasets: loaded once through torchvision, then kept as uint8 tensors on the training device.

A batch is gathered by index from the resident tensor, then scaled and normalized on the device,
so the hot loop has no per-sample Python work and no PIL.
"""

from dataclasses import dataclass

import torch
from torchvision import datasets as tv

from .registry import ConfigError, Registry


class DataError(RuntimeError):
    """Data files missing, unreadable or corrupt."""


@dataclass
class RawSplit:
    images: torch.Tensor  # uint8 (N, H, W)
    labels: torch.Tensor  # int64 (N,) class indices


@dataclass
class DatasetSource:
    """A registry entry: how to load both splits and what the classes are called."""

    load: callable  # (root, train, download, **options) -> RawSplit
    class_names: callable  # (**options) -> list[str]
    folder: str  # sub-folder of the data root that torchvision reads


DATASETS: Registry[DatasetSource] = Registry("dataset")

DIGITS = [str(d) for d in range(10)]


def _torchvision_loader(cls, transpose=False):
    def load(root, train, download, **options):
        ds = cls(root=root, train=train, download=download, **options)
        images, labels = ds.data, ds.targets
        if labels.dim() == 2:  # QMNIST keeps 8 columns of metadata; the first is the class
            labels = labels[:, 0]
        if transpose:  # EMNIST stores images transposed
            images = images.transpose(1, 2)
        return RawSplit(images.contiguous(), labels.long())

    return load


DATASETS.register("mnist")(
    DatasetSource(_torchvision_loader(tv.MNIST), lambda: DIGITS, "MNIST")
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

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images -> normalized float32, one fused pass on the device."""
        scale = 1.0 / (255.0 * self.std)
        return images.float().mul_(scale).sub_(self.mean / self.std)

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
                index = order[start : start + batch_size]
                images, labels = split.images[index], split.labels[index]
            yield self.prepare(images), labels


def _read(source: DatasetSource, cfg, train: bool, options: dict) -> RawSplit:
    try:
        return source.load(cfg.root, train=train, download=cfg.download, **options)
    except DataError:
        raise
    except (RuntimeError, OSError, ValueError, AssertionError) as e:
        where = f"{cfg.root}/{source.folder}/raw"
        how = "download failed" if cfg.download else "download is off (dataset.download=false)"
        raise DataError(
            f"{cfg.name} could not be loaded from {where} ({how}: {str(e).strip() or type(e).__name__}). "
            f"Point the runner at a folder that holds {source.folder}/raw/: "
            f"dataset.root=PATH or MNIST_RUNNER_DATA=PATH"
        ) from e


def load_data(cfg, device: torch.device) -> Data:
    """Load both splits of the configured dataset onto `device` as uint8 tensors."""
    source = DATASETS.get(cfg.name)
    options = dict(cfg.get("options") or {})
    train, test = _read(source, cfg, True, options), _read(source, cfg, False, options)
    class_names = list(source.class_names(**options))

    mean, std = 0.0, 1.0
    if cfg.normalize == "fixed":
        mean, std = float(cfg.mean), float(cfg.std)
    elif cfg.normalize == "auto":
        pixels = train.images.double() / 255.0
        mean, std = pixels.mean().item(), pixels.std().item()
    elif cfg.normalize != "none":
        raise ConfigError(
            f"dataset.normalize={cfg.normalize!r} is not allowed; choose one of: none, fixed, auto"
        )

    def to_device(split: RawSplit) -> Split:
        return Split(split.images.unsqueeze(1).to(device), split.labels.to(device))

    return Data(to_device(train), to_device(test), class_names, mean, std)
