"""Shared fixtures: small MNIST-format IDX files in torchvision's raw layout, and a CLI runner.

The files go through torchvision's real readers, so the loading code under test is the real one.
"""

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("MNIST_RUNNER_DATA", ROOT.parent / "shared" / "data"))

_IDX_TYPES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C}


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write `array` as an IDX file (big-endian, as LeCun's format and torchvision expect)."""
    code = _IDX_TYPES[array.dtype.type]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, code, array.ndim))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.astype(array.dtype.newbyteorder(">"), copy=False).tobytes())


def synthetic_digits(n: int, num_classes: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Learnable 28x28 uint8 images: each class is a bright square at its own place, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        r, col = 3 + 5 * (c // 4), 3 + 6 * (c % 4)
        images[i, r : r + 6, col : col + 6] = 255
    return images, labels.astype(np.uint8)


def write_mnist_layout(root: Path, folder: str = "MNIST", n_train: int = 300, n_test: int = 100,
                       num_classes: int = 10, prefix: str = "", suffix: str = "") -> Path:  # fmt: skip
    raw = root / folder / "raw"
    for split, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = synthetic_digits(n, num_classes, seed)
        write_idx(raw / f"{prefix}{split}-images-idx3-ubyte{suffix}", images)
        write_idx(raw / f"{prefix}{split}-labels-idx1-ubyte{suffix}", labels)
    return root


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """A data root holding a small synthetic MNIST in torchvision's raw layout."""
    return write_mnist_layout(tmp_path_factory.mktemp("data"))


@pytest.fixture
def run_cli(tmp_path, data_root):
    """Run `python -m mnist_runner ARGS` in a fresh folder on fixture data; returns the result."""

    def run(*args, module="mnist_runner", cwd=None, env=None, timeout=300, data=True):
        full_env = {**os.environ, "MNIST_RUNNER_DATA": str(data_root), **(env or {})}
        extra = ["device=cpu", "trainer.progress=false"] if module == "mnist_runner" and data else []
        return subprocess.run(
            [sys.executable, "-m", module, *extra, *args],
            cwd=cwd or tmp_path, env=full_env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    return run


def run_folders(base: Path) -> list[Path]:
    """Every run folder (one holding summary.json) below `base`, sorted."""
    return sorted(p.parent for p in base.rglob("summary.json"))
