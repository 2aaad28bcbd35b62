"""The runner end to end: config composition, registries, LeNets, the CLI's output contract."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REAL_DATA, ROOT, run_folders
from hydra import compose, initialize_config_dir

from mnist_runner.config import config_dir
from mnist_runner.models import MODELS, build_model, count_parameters
from mnist_runner.models.lenet import C3_TABLE, SparseConv2d
from mnist_runner.registry import ConfigError, Registry

GROUPS = ["model", "dataset", "loss", "optimizer", "device"]


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("group", GROUPS)
def test_every_group_option_composes(group):
    options = group_options(group)
    assert options, f"conf/{group}/ is empty"
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        for option in options:
            cfg = compose("config", overrides=[f"{group}={option}"])
            assert group in cfg and cfg[group], (group, option)


def test_defaults_reproduce_the_seeds_lenet_runs():
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config")
    assert cfg.model.name == "lenet_full" and cfg.dataset.name == "mnist"
    assert cfg.loss.name == "cross_entropy" and cfg.device.type == "auto"
    assert (cfg.optimizer.name, cfg.optimizer.lr) == ("sgd", 0.1)
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.trainer.eval_batch_size) == (10, 100, 1000)
    assert cfg.seed == 0 and cfg.trainer.progress is True


def test_config_files_carry_no_import_paths():
    for path in (ROOT / "conf").rglob("*.yaml"):
        assert "_target_" not in path.read_text(), path


def test_registry_rejects_duplicates_and_lists_valid_names():
    reg = Registry("widget")
    reg.register("a")(lambda: 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(lambda: 2)
    reg.register("b")(lambda: 2)
    assert reg.list() == ["a", "b"]
    with pytest.raises(ConfigError, match="unknown widget 'c'; choose one of: a, b"):
        reg.get("c")


@pytest.mark.parametrize("name, total", [("lenet_full", 61706), ("lenet_subset", 60806)])
def test_lenet_parameter_counts(name, total):
    model = MODELS.get(name)(input_shape=(1, 28, 28), num_classes=10)
    assert count_parameters(model) == {"total": total, "trainable": total}
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_subset_c3_has_exactly_the_seed_table():
    conv = SparseConv2d(6, C3_TABLE, 5)
    assert conv.weight.numel() == 1500 and conv.bias.numel() == 16
    dense = conv.dense_weight()
    connected = dense.abs().sum(dim=(2, 3)) > 0
    expected = torch.zeros(16, 6, dtype=torch.bool)
    for o, inputs in enumerate(C3_TABLE):
        expected[o, inputs] = True
    assert torch.equal(connected, expected)


def test_subset_c3_equals_the_seeds_separate_convolutions_and_grads_reach_stored_weights():
    torch.manual_seed(0)
    conv = SparseConv2d(6, C3_TABLE, 5)
    x = torch.randn(4, 6, 14, 14)
    dense = conv.dense_weight().detach()
    reference = torch.cat(
        [
            torch.nn.functional.conv2d(x[:, ins], dense[o : o + 1, ins], conv.bias[o : o + 1].detach())
            for o, ins in enumerate(C3_TABLE)
        ],
        dim=1,
    )
    out = conv(x)
    assert torch.allclose(out, reference, atol=1e-5)
    out.square().sum().backward()
    assert conv.weight.grad.shape == (60, 5, 5) and conv.weight.grad.abs().sum() > 0
    assert [n for n, _ in conv.named_parameters()] == ["weight", "bias"]


def test_model_rejects_input_it_cannot_take():
    from omegaconf import OmegaConf

    with pytest.raises(ConfigError, match=r"model=lenet_full takes inputs of shape \(1, 28, 28\)"):
        build_model(OmegaConf.create({"name": "lenet_full"}), (3, 32, 32), 10)


@pytest.mark.slow
def test_cli_writes_every_documented_output(run_cli, tmp_path):
    result = run_cli("trainer.epochs=2", "trainer.log_interval=1", "model=lenet_subset")
    assert result.returncode == 0, result.stderr
    (run,) = run_folders(tmp_path / "outputs")
    assert run.parent.parent.name == "outputs" and len(run.parent.name) == 10  # outputs/YYYY-MM-DD/HH-MM-SS
    for name in [
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
        "metrics.csv",
        "summary.json",
        "model_summary.txt",
        "plots/loss.png",
        "plots/accuracy.png",
        "model.pt",
    ]:
        assert (run / name).is_file(), name

    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_seconds"]
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(0 <= float(r["test_acc"]) <= 1 and float(r["lr"]) == 0.1 for r in rows)

    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["choices"]["model"] == "lenet_subset" and summary["choices"]["dataset"] == "mnist"
    assert "model=lenet_subset" in summary["overrides"]
    assert summary["params"] == {"total": 60806, "trainable": 60806}
    assert set(summary["final"]) == {"train_loss", "train_acc", "test_loss", "test_acc"}
    assert summary["final"]["test_acc"] == float(rows[-1]["test_acc"])
    assert summary["best_test_acc"] == max(float(r["test_acc"]) for r in rows)
    assert summary["epochs_completed"] == 2 and summary["device"] == "cpu" and summary["seed"] == 0
    assert summary["wall_seconds"] > 0 and summary["versions"]["torch"] == torch.__version__

    state = torch.load(run / "model.pt", weights_only=True)
    assert state["features.4.weight"].shape == (60, 5, 5)
    assert "Total params: 60,806" in (run / "model_summary.txt").read_text()
    assert "epoch 2/2" in result.stdout and f"Output folder: {run}" in result.stdout


@pytest.mark.slow
def test_two_runs_in_the_same_second_get_their_own_folders(tmp_path, data_root):
    env = {**os.environ, "MNIST_RUNNER_DATA": str(data_root)}
    args = [
        sys.executable,
        "-m",
        "mnist_runner",
        "device=cpu",
        "trainer.epochs=1",
        "trainer.progress=false",
        "hydra.run.dir=${unique_dir:outputs/same}",
    ]
    procs = [subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL) for _ in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    assert [p.name for p in run_folders(tmp_path / "outputs")] == ["same", "same-1"]


@pytest.mark.slow
def test_missing_data_names_the_folder_and_the_fix(run_cli, tmp_path):
    empty = tmp_path / "nothing-here"
    result = run_cli(f"dataset.root={empty}", "dataset.download=false")
    assert result.returncode != 0
    assert f"{empty}/MNIST/raw" in result.stderr and "dataset.root=PATH" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_unavailable_device_is_a_clear_error(run_cli):
    result = run_cli("device=cuda")
    assert result.returncode == 2
    assert "device.type='cuda' is not available" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_help_and_cfg_job_do_not_import_torch(tmp_path):
    code = (
        "import sys; sys.argv=['mnist-runner','--cfg','job']; from mnist_runner.train import main\n"
        "try: main()\nexcept SystemExit: pass\nassert 'torch' not in sys.modules, 'torch imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "name: lenet_full" in result.stdout
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_wheel_ships_the_configs(tmp_path):
    dist, target = tmp_path / "dist", tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = dist.glob("mnist_runner-*.whl")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "mnist_runner", "--cfg", "job", "model=lenet_subset"],
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "name: lenet_subset" in result.stdout
    assert (target / "mnist_runner" / "conf" / "config.yaml").is_file()


@pytest.mark.slow
@pytest.mark.skipif(not (REAL_DATA / "MNIST" / "raw").is_dir(), reason="real MNIST not present")
def test_one_epoch_of_lenet_on_real_mnist(run_cli, tmp_path):
    result = run_cli("trainer.epochs=1", f"dataset.root={REAL_DATA}", timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads((run_folders(tmp_path / "outputs")[0] / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["params"]["total"] == 61706
    assert summary["final"]["test_acc"] > 0.9
