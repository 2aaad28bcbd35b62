"""Your own data with no code: `dataset=npz` and `dataset=image_folder` on files the tests write (issue 13)."""

import numpy as np
import pytest
import torch
from conftest import compose_config, run_cli_in_process, run_job, synthetic_digits

from mnist_runner.data import DataError, load_data
from mnist_runner.registry import ConfigError

CPU = torch.device("cpu")


def load(*overrides, seed=0):
    return load_data(compose_config(*overrides).dataset, CPU, seed)


train = run_job  # these datasets have no dataset.root, so run_in_process does not fit


def write_npz(path, n_train=120, n_test=60, num_classes=4, **extra):
    """Learnable 28x28 digits of `num_classes` classes; `extra` arrays replace or add to them."""
    x_train, y_train = synthetic_digits(n_train, num_classes, seed=0)
    x_test, y_test = synthetic_digits(n_test, num_classes, seed=1)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test, **extra}
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


# --- npz -----------------------------------------------------------------------------------------


def test_npz_grayscale_with_class_names(tmp_path):
    path = write_npz(tmp_path / "d.npz", classes=np.array(["a", "b", "c", "d"]))
    data = load("dataset=npz", f"dataset.path={path}")
    x_train, y_train = synthetic_digits(120, 4, seed=0)
    assert data.input_shape == (1, 28, 28) and data.class_names == ["a", "b", "c", "d"]
    assert len(data.train) == 120 and len(data.test) == 60
    assert torch.equal(data.train.images[:, 0], torch.from_numpy(x_train))
    assert torch.equal(data.train.labels, torch.from_numpy(y_train).long())
    assert data.mean == 0.0 and data.std == 1.0


def test_npz_colour_gets_every_selection(tmp_path):
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, size=(90, 3, 12, 10), dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(30, 3, 12, 10), dtype=np.uint8)
    y_train, y_test = np.arange(90) % 3, np.arange(30) % 3
    path = tmp_path / "rgb.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    data = load(
        "dataset=npz",
        f"dataset.path={path}",
        "dataset.classes=[2,0]",
        "dataset.per_class=8",
        "dataset.val_fraction=0.25",
        "dataset.normalize=auto",
    )
    assert data.input_shape == (3, 12, 10) and data.class_names == ["2", "0"]
    assert len(data.train) + len(data.val) == 16 and len(data.val) == 4 and len(data.test) == 16
    assert set(data.test.labels.tolist()) == {0, 1}
    expected = np.concatenate([x_train[y_train == 2][:8], x_train[y_train == 0][:8]])  # the first 8 of each
    got = torch.cat([data.train.images, data.val.images]).numpy()
    assert sorted(a.tobytes() for a in got) == sorted(a.tobytes() for a in expected)
    assert 0.45 < data.mean < 0.55 and 0.25 < data.std < 0.33  # uniform pixels: mean 0.5, std 0.29


def test_npz_single_channel_arrays_and_labels_without_names(tmp_path):
    x, y = synthetic_digits(40, 5, seed=0)
    path = tmp_path / "c1.npz"
    np.savez(path, x_train=x[:, None], y_train=y.astype(np.int32), x_test=x[:, None], y_test=y)
    data = load("dataset=npz", f"dataset.path={path}")
    assert data.input_shape == (1, 28, 28) and data.class_names == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"y_test": None}, "has no array 'y_test'; it needs x_train, y_train, x_test, y_test"),
        (
            {"classes": np.array(["a", "b"])},
            "y_train holds label 3 but classes names 2 classes; labels must be in 0..1",
        ),
        ({"y_test": -np.ones(60, dtype=np.int64)}, "y_test holds label -1; labels are class indices"),
        ({"x_train": np.zeros((120, 28, 28), np.float32)}, "x_train has dtype float32; images must be uint8"),
        ({"x_train": np.zeros((120, 28, 28, 3), np.uint8)}, "channels last; images must be N x H x W or N x C x H x W"),
        ({"x_test": np.zeros((60, 14, 14), np.uint8)}, "x_train images have shape 28x28 but x_test images 14x14"),
        ({"y_train": np.zeros(7, np.int64)}, "y_train has 7 labels for 120 images"),
        ({"y_train": np.zeros(120, np.float32)}, "labels must be one integer class index per image"),
    ],
)
def test_npz_bad_arrays_are_one_clear_error(tmp_path, extra, message):
    path = write_npz(tmp_path / "bad.npz", **extra)
    with pytest.raises(DataError, match="dataset=npz") as error:
        load("dataset=npz", f"dataset.path={path}")
    assert message in str(error.value)


def test_npz_bad_path_and_classes_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"dataset.path is not set; give dataset.path=digits.npz"):
        load("dataset=npz")
    with pytest.raises(ConfigError, match=r"dataset.path=.*nope.npz is not allowed; it must be an existing file"):
        load("dataset=npz", f"dataset.path={tmp_path / 'nope.npz'}")
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(DataError, match=r"junk.npz cannot be read as an .npz file"):
        load("dataset=npz", f"dataset.path={tmp_path / 'junk.npz'}")
    path = write_npz(tmp_path / "d.npz")
    with pytest.raises(ConfigError, match=r"dataset.classes=\[1,7\] is not allowed.*in 0..3 \(dataset=npz has 4"):
        load("dataset=npz", f"dataset.path={path}", "dataset.classes=[1,7]")


@pytest.mark.slow
def test_npz_trains_an_mlp_and_refuses_a_model_that_does_not_fit(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 40, size=(200, 3, 12, 12), dtype=np.uint8), np.arange(200) % 2
    x[y == 1, :, :6] = 255  # class 1: the top half is bright
    path = tmp_path / "rgb.npz"
    np.savez(path, x_train=x[:150], y_train=y[:150], x_test=x[150:], y_test=y[150:])
    common = ("dataset=npz", f"dataset.path={path}", "trainer.epochs=2", "trainer.batch_size=10")
    summary = train(tmp_path / "mlp", *common, "model=mlp")
    assert summary["status"] == "completed" and summary["final"]["test_acc"] == 1.0
    assert summary["data"] == {"input_shape": [3, 12, 12], "classes": ["0", "1"], "background": "dark"}
    with pytest.raises(ConfigError, match=r"model=lenet_full takes inputs of shape \(1, 28, 28\) but the dataset"):
        train(tmp_path / "lenet", *common, "model=lenet_full")


def test_npz_on_the_command_line(tmp_path):
    path = write_npz(tmp_path / "d.npz", y_test=None)
    result = run_cli_in_process(tmp_path, tmp_path, "dataset=npz", f"dataset.path={path}", "model=mlp")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: dataset=npz (dataset.path={path}) has no array 'y_test'; it needs x_train, y_train, x_test, "
        f"y_test (and optionally classes)"
    ]
    result = run_cli_in_process(tmp_path, tmp_path, "dataset=npz", "model=mlp")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Error: dataset.path is not set" in result.stderr


# --- image_folder --------------------------------------------------------------------------------


def write_images(root, classes=("cat", "dog"), per_class=3, size=(20, 16), mode="L", splits=("train", "test")):
    """PNG files root/<split>/<class>/<i>.png; class k's images have brightness 60 + 90 k."""
    from PIL import Image

    for split in splits:
        for k, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                value = 60 + 90 * k
                pixels = np.full((size[0], size[1], 3) if mode == "RGB" else size, value, dtype=np.uint8)
                pixels[0, 0] = i  # each image a little different
                Image.fromarray(pixels, mode).save(folder / f"{i}.png")
    return root


def test_image_folder_grayscale_in_class_folder_order(tmp_path):
    root = write_images(tmp_path / "imgs", classes=("dog", "cat", "emu"))
    (root / "train" / "cat" / "notes.txt").write_text("not an image: ignored")
    data = load("dataset=image_folder", f"dataset.path={root}")
    assert data.class_names == ["cat", "dog", "emu"]  # sorted, as torchvision's ImageFolder
    assert data.input_shape == (1, 20, 16) and len(data.train) == 9 and len(data.test) == 9
    assert data.train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert data.train.images[0, 0, 5, 5].item() == 60 + 90 * 1  # cat was written second
    assert data.train.images[0, 0, 0, 0].item() == 0


def test_image_folder_rgb_resized_with_selections(tmp_path):
    root = write_images(tmp_path / "imgs", classes=("a", "b", "c"), per_class=4, mode="RGB")
    data = load(
        "dataset=image_folder",
        f"dataset.path={root}",
        "dataset.channels=3",
        "dataset.size=[8,10]",
        "dataset.classes=[2,1]",
        "dataset.per_class=2",
        "dataset.normalize=auto",
    )
    assert data.input_shape == (3, 8, 10) and data.class_names == ["c", "b"]
    assert len(data.train) == 4 and data.train.images.dtype == torch.uint8
    assert data.mean == pytest.approx((240 + 150) / 2 / 255, abs=0.01)  # classes c and b: brightness 240, 150
    square = load("dataset=image_folder", f"dataset.path={root}", "dataset.size=12")
    assert square.input_shape == (1, 12, 12)


@pytest.mark.parametrize(
    "setup, error, message",
    [
        ("no_classes", DataError, "train/ has no class folders"),
        ("mismatch", DataError, "train/ and test/ have different classes (only in train/: dog; only in test/: emu)"),
        ("no_test", DataError, "has no test/ folder"),
        ("unreadable", DataError, "cannot read image"),
        ("empty_class", DataError, "test/dog/ holds no image files"),
        ("sizes", DataError, "images differ in size"),
        ("channels", ConfigError, "dataset.channels=2 is not allowed; it must be 1 (grayscale) or 3 (RGB)"),
        ("size", ConfigError, "dataset.size=[0,5] is not allowed"),
        ("path", ConfigError, "must be an existing folder"),
    ],
)
def test_image_folder_bad_input_is_one_clear_error(tmp_path, setup, error, message):
    root = tmp_path / "imgs"
    overrides = []
    if setup == "no_classes":
        (root / "train").mkdir(parents=True)
        (root / "test").mkdir()
    elif setup == "mismatch":
        write_images(root, classes=("cat", "dog"), splits=("train",))
        write_images(root, classes=("cat", "emu"), splits=("test",))
    elif setup == "no_test":
        write_images(root, splits=("train",))
    elif setup == "unreadable":
        write_images(root)
        (root / "train" / "cat" / "broken.png").write_bytes(b"\x89PNG not really")
    elif setup == "empty_class":
        write_images(root)
        for f in (root / "test" / "dog").iterdir():
            f.unlink()
    elif setup == "sizes":
        write_images(root)
        write_images(root, classes=("dog",), size=(10, 10), splits=("test",))
    elif setup in ("channels", "size"):
        write_images(root)
        overrides = ["dataset.channels=2"] if setup == "channels" else ["dataset.size=[0,5]"]
    else:
        root = tmp_path / "missing"
    with pytest.raises(error) as caught:
        load("dataset=image_folder", f"dataset.path={root}", *overrides)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
