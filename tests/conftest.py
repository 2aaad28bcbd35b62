"""Shared fixtures: small MNIST-format IDX files in torchvision's raw layout, and a CLI runner.

The files go through torchvision's real readers, so the loading code under test is the real one.
"""

import copy
import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist_runner.idx import write_idx

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("MNIST_RUNNER_DATA", ROOT.parent / "shared" / "data")).resolve()  # tests change folder


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


def write_mnist_layout(
    root: Path,
    folder: str = "MNIST",
    n_train: int = 300,
    n_test: int = 100,
    num_classes: int = 10,
    prefix: str = "",
    suffix: str = "",
) -> Path:
    raw = root / folder / "raw"
    for split, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = synthetic_digits(n, num_classes, seed)
        write_idx(raw / f"{prefix}{split}-images-idx3-ubyte{suffix}", images)
        write_idx(raw / f"{prefix}{split}-labels-idx1-ubyte{suffix}", labels)
    return root


def _checkout_runs() -> set[Path]:
    return {p for base in ("outputs", "multirun") for p in (ROOT / base).glob("*/*")}


@pytest.fixture(scope="session", autouse=True)
def checkout_stays_clean():
    """Tests write only below pytest's tmp folders: none may add a run folder to the checkout's outputs/ or
    multirun/ (a user's own runs there are left alone)."""
    before = _checkout_runs()
    yield
    made = sorted(_checkout_runs() - before)
    assert not made, f"tests wrote {len(made)} folder(s) into the checkout, e.g. {made[0]}"


@pytest.fixture(scope="session", autouse=True)
def hydra_setup():
    """What the entry points set up before Hydra composes (config.setup), for the tests that compose directly."""
    from mnist_runner.config import setup

    setup()


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
            cwd=cwd or tmp_path,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


def run_folders(base: Path) -> list[Path]:
    """Every run folder (one holding summary.json) below `base`, sorted."""
    return sorted(p.parent for p in base.rglob("summary.json"))


# --- Every dataset of the registry, in torchvision's raw layout (issue 3) -------------------------

EMNIST_BALANCED_CLASSES = 47


def write_dataset_layout(root: Path, name: str, n_train: int = 200, n_test: int = 100) -> Path:
    """Fixture files for the registered dataset `name`, named as torchvision 0.29 reads them:
    MNIST, FashionMNIST, KMNIST: <Folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte;
    QMNIST: QMNIST/raw/qmnist-{train,test}-images-idx3-ubyte and -labels-idx2-int (int32, 8 columns,
    the class first); EMNIST (split balanced): EMNIST/raw/emnist-balanced-{train,test}-...-ubyte."""
    if name in ("mnist", "fashion_mnist", "kmnist"):
        folder = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "kmnist": "KMNIST"}[name]
        return write_mnist_layout(root, folder, n_train, n_test)
    raw = root / {"qmnist": "QMNIST", "emnist": "EMNIST"}[name] / "raw"
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        if name == "qmnist":
            images, labels = synthetic_digits(n, 10, seed)
            table = np.zeros((n, 8), dtype=np.int32)
            table[:, 0], table[:, 5] = labels, np.arange(n)  # class, then QMNIST's metadata columns
            write_idx(raw / f"qmnist-{split}-images-idx3-ubyte", images)
            write_idx(raw / f"qmnist-{split}-labels-idx2-int", table)
        else:
            images, labels = synthetic_digits(n, EMNIST_BALANCED_CLASSES, seed)
            write_idx(raw / f"emnist-balanced-{split}-images-idx3-ubyte", images.transpose(0, 2, 1))
            write_idx(raw / f"emnist-balanced-{split}-labels-idx1-ubyte", labels)
    return root


@pytest.fixture(scope="session")
def all_data_root(tmp_path_factory) -> Path:
    """A data root holding small synthetic copies of every registered dataset."""
    root = tmp_path_factory.mktemp("all_data")
    for name in ("mnist", "fashion_mnist", "kmnist", "qmnist", "emnist"):
        write_dataset_layout(root, name)
    return root


def builtin_entries(registry) -> list[str]:
    """The registry's own entries, not those of plugin packages installed beside it (so that tests over every
    entry do not depend on what else is installed)."""
    return [name for name in registry.list() if registry.module_of(name).split(".")[0] == "mnist_runner"]


def compose_config(*overrides: str):
    """The config `python -m mnist_runner OVERRIDES` would run, with Hydra's runtime choices."""
    return copy.deepcopy(_compose(overrides))


@functools.cache
def _compose(overrides: tuple[str, ...]):
    from hydra import compose, initialize_config_dir

    from mnist_runner.config import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def run_in_process(out: Path, data: Path, *overrides: str) -> dict:
    """Run one job in this process (no subprocess start-up) on fixture data; returns summary.json."""
    return run_job(out, f"dataset.root={data}", *overrides)


def run_job(out: Path, *overrides: str) -> dict:
    """Run one job (cpu, no progress bar, no plots) in this process in `out`; returns summary.json."""
    import json

    from omegaconf import open_dict

    from mnist_runner.run import run

    overrides = ("device=cpu", "trainer.progress=false", "report.plots=false", *overrides)
    cfg = compose_config(*overrides)
    choices = {k: v for k, v in cfg.hydra.runtime.choices.items() if not k.startswith("hydra")}
    with open_dict(cfg):
        del cfg["hydra"]  # a job's config, as Hydra hands it to the task (resolving it would make outputs/ here)
    run(cfg, out, choices, list(overrides))
    return json.loads((out / "summary.json").read_text())


# --- The CLI in this process (issue 5): no interpreter start-up, for tables of short runs ----------


@pytest.fixture(scope="session")
def trained(tmp_path_factory, data_root) -> Path:
    """A finished 2-epoch mlp_128 run on the fixture MNIST (300 training, 100 test digits), plots off."""
    cwd = tmp_path_factory.mktemp("trained")
    result = run_cli_in_process(cwd, data_root, "model=mlp_128", "trainer.epochs=2", "report.plots=false")
    assert result.returncode == 0, result.stderr
    (folder,) = run_folders(cwd)
    return folder


def run_cli_in_process(cwd: Path, data: Path, *args: str) -> subprocess.CompletedProcess:
    """`mnist-runner device=cpu trainer.progress=false ARGS` run in this process, in `cwd`, on the
    data root `data`; returns a CompletedProcess (returncode, stdout, stderr)."""
    import contextlib
    import io

    from mnist_runner.train import main

    flags = [a for a in args if a.startswith("-")]  # -m, --cfg job: before the overrides
    argv = ["mnist-runner", *flags, "device=cpu", "trainer.progress=false", *(a for a in args if a not in flags)]
    saved = os.getcwd(), os.environ.get("MNIST_RUNNER_DATA"), sys.argv
    out, err = io.StringIO(), io.StringIO()
    try:
        os.chdir(cwd)
        os.environ["MNIST_RUNNER_DATA"], sys.argv = str(data), argv
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else int(e.code is not None)
    finally:
        os.chdir(saved[0])
        sys.argv = saved[2]
        if saved[1] is None:
            os.environ.pop("MNIST_RUNNER_DATA", None)
        else:
            os.environ["MNIST_RUNNER_DATA"] = saved[1]
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli(tmp_path, data_root):
    """`cli(*args)`: run_cli_in_process in tmp_path on the fixture data."""
    return lambda *args: run_cli_in_process(tmp_path, data_root, *args)
