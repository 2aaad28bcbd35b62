"""Datasets through torchvision's real readers on fixture files, and every dataset option."""

import csv

import numpy as np
import pytest
import torch
from conftest import EMNIST_BALANCED_CLASSES, ROOT, builtin_entries, compose_config, run_in_process, synthetic_digits

from mnist_runner.data import DATASETS, DataError, load_data
from mnist_runner.registry import ConfigError

CPU = torch.device("cpu")


def load(root, *overrides, seed=0):
    return load_data(compose_config(f"dataset.root={root}", "dataset.download=false", *overrides).dataset, CPU, seed)


def test_every_dataset_config_names_a_registry_entry():
    options = sorted(p.stem for p in (ROOT / "conf" / "dataset").glob("*.yaml"))
    assert options == [
        "emnist",
        "fashion_mnist",
        "image_folder",
        "kmnist",
        "mnist",
        "mnist_4v9",
        "mnist_600",
        "npz",
        "qmnist",
    ]
    assert {compose_config(f"dataset={o}").dataset.name for o in options} == set(builtin_entries(DATASETS))


@pytest.mark.parametrize(
    "option, classes, first, last",
    [
        ("mnist", 10, "0", "9"),
        ("fashion_mnist", 10, "T-shirt/top", "Ankle boot"),
        ("kmnist", 10, "o", "wo"),
        ("qmnist", 10, "0", "9"),
        ("emnist", EMNIST_BALANCED_CLASSES, "0", "t"),
    ],
)
def test_each_dataset_loads_from_torchvisions_raw_layout_with_class_names(all_data_root, option, classes, first, last):
    data = load(all_data_root, f"dataset={option}")
    assert (len(data.train), len(data.test)) == (200, 100)
    assert data.num_classes == classes and (data.class_names[0], data.class_names[-1]) == (first, last)
    assert data.input_shape == (1, 28, 28) and data.train.images.dtype == torch.uint8
    images, labels = synthetic_digits(200, classes, seed=0)  # what the fixture wrote (EMNIST: transposed)
    assert torch.equal(data.train.labels, torch.from_numpy(labels.astype(np.int64)))
    assert torch.equal(data.train.images[:, 0], torch.from_numpy(images))  # EMNIST is transposed back


def test_emnist_split_is_an_option_and_a_missing_one_names_its_folder(all_data_root):
    assert compose_config("dataset=emnist").dataset.split == "balanced"
    with pytest.raises(
        DataError, match=rf"emnist could not be loaded from {all_data_root}/EMNIST/raw .*dataset.root=PATH"
    ):
        load(all_data_root, "dataset=emnist", "dataset.split=letters")


def test_a_dataset_that_is_not_there_names_its_folder(tmp_path):
    with pytest.raises(DataError, match=rf"{tmp_path}/FashionMNIST/raw \(download is off"):
        load(tmp_path, "dataset=fashion_mnist")


def test_normalize_none_fixed_auto(data_root):
    none = load(data_root)
    assert (none.mean, none.std) == (0.0, 1.0)
    x = none.prepare(none.train.images)
    assert x.min().item() == 0.0 and x.max().item() == 1.0
    fixed = load(data_root, "dataset.normalize=fixed")
    assert (fixed.mean, fixed.std) == (0.1307, 0.3081)
    auto = load(data_root, "dataset.normalize=auto")
    pixels = none.train.images.double() / 255
    assert auto.mean == pytest.approx(pixels.mean().item()) and auto.std == pytest.approx(pixels.std().item())
    x = auto.prepare(auto.train.images)
    assert x.mean().item() == pytest.approx(0, abs=1e-4) and x.std().item() == pytest.approx(1, abs=1e-3)


def test_auto_normalization_values_go_into_the_summary(tmp_path, data_root):
    summary = run_in_process(tmp_path, data_root, "dataset.normalize=auto", "model=softmax", "trainer.epochs=1")
    pixels = load(data_root).train.images.double() / 255
    assert summary["normalization"]["mean"] == pytest.approx(pixels.mean().item())
    assert summary["normalization"]["std"] == pytest.approx(pixels.std().item())


def test_classes_keeps_and_relabels_in_the_order_given(data_root):
    full = load(data_root)
    data = load(data_root, "dataset.classes=[9,4]")
    assert data.class_names == ["9", "4"] and data.num_classes == 2
    for split, whole in ((data.train, full.train), (data.test, full.test)):
        keep = (whole.labels == 9) | (whole.labels == 4)
        assert torch.equal(split.images, whole.images[keep])
        assert torch.equal(split.labels, (whole.labels[keep] == 4).long())  # 9 -> 0, 4 -> 1


def test_mnist_4v9_preset(data_root):
    data = load(data_root, "dataset=mnist_4v9")
    assert data.class_names == ["4", "9"] and data.binary_labels == "pm1"
    assert set(data.train.labels.tolist()) == {0, 1}


def test_per_class_takes_the_first_n_of_each_class_in_both_splits(data_root):
    full, data = load(data_root), load(data_root, "dataset.per_class=7")
    assert (len(data.train), len(data.test)) == (70, 70)
    for split, whole in ((data.train, full.train), (data.test, full.test)):
        assert torch.bincount(split.labels).tolist() == [7] * 10
        expected = torch.cat([(whole.labels == k).nonzero().flatten()[:7] for k in range(10)]).sort().values
        assert torch.equal(split.images, whole.images[expected])
    assert compose_config("dataset=mnist_600").dataset.per_class == 600


def test_per_class_larger_than_a_class_is_a_clear_error(data_root):
    with pytest.raises(
        ConfigError,
        match=r"dataset.per_class=50 is larger than the train split has of class '0' \(30, the fewest of any class\); "
        r"choose at most 30",
    ):
        load(data_root, "dataset.per_class=50")


def test_classes_then_per_class(data_root):
    data = load(data_root, "dataset=mnist_4v9", "dataset.per_class=5")
    assert torch.bincount(data.train.labels).tolist() == [5, 5] and data.class_names == ["4", "9"]


def test_val_fraction_holds_out_a_seeded_part_of_the_training_split(data_root):
    full = load(data_root)
    a, b, c = (load(data_root, "dataset.val_fraction=0.25", seed=s) for s in (0, 0, 1))
    assert (len(a.train), len(a.val), len(a.test)) == (225, 75, 100)
    assert torch.equal(a.val.images, b.val.images) and not torch.equal(a.val.images, c.val.images)
    together = torch.cat([a.train.images, a.val.images]).flatten(1)
    assert sorted(map(bytes, together.numpy())) == sorted(map(bytes, full.train.images.flatten(1).numpy()))
    assert full.val is None


def test_val_fraction_adds_columns_and_the_best_validation_epoch(tmp_path, data_root):
    summary = run_in_process(
        tmp_path, data_root, "dataset.val_fraction=0.2", "model=softmax", "trainer.epochs=3", "optimizer.lr=0.5"
    )
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[-2:] == ["val_loss", "val_acc"] and len(rows) == 3
    best = max(rows, key=lambda r: float(r["val_acc"]))
    assert summary["best_val"]["epoch"] == int(best["epoch"])
    assert summary["best_val"]["val_acc"] == float(best["val_acc"])
    assert summary["best_val"]["test_acc"] == float(best["test_acc"])
