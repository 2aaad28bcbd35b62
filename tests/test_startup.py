"""Start-up and threads (issue 10): the run path reads IDX files itself (torchvision only to download),
and `trainer.threads=null` picks the threads for the situation, records them and keeps them on resume.
Nothing here asserts how fast anything is (benchmarks/benchmark.py measures that)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import compose_config, run_cli_in_process, run_folders

from mnist_runner import cpu, speed
from mnist_runner.data import DATASETS, DataError
from mnist_runner.registry import ConfigError
from mnist_runner.validate import validate

FOLDERS = {
    "mnist": "MNIST",
    "fashion_mnist": "FashionMNIST",
    "kmnist": "KMNIST",
    "qmnist": "QMNIST",
    "emnist": "EMNIST",
}


def torchvision_split(root: Path, name: str, train: bool):
    """What torchvision's dataset class reads from the same folder, as data.py keeps it."""
    from torchvision import datasets

    options = {"split": "balanced"} if name == "emnist" else {}
    ds = getattr(datasets, FOLDERS[name])(root=root, train=train, download=False, **options)
    images, labels = ds.data, ds.targets
    labels = labels[:, 0] if labels.dim() == 2 else labels
    return (images.transpose(1, 2) if name == "emnist" else images).contiguous(), labels.long()


@pytest.mark.parametrize("name", list(FOLDERS))
def test_idx_files_are_read_into_torchvisions_tensors(all_data_root, name):
    source = DATASETS.get(name)
    options = {"split": "balanced"} if name == "emnist" else {}
    for train in (True, False):
        ours = source.load(all_data_root, train=train, download=False, **options)
        images, labels = torchvision_split(all_data_root, name, train)
        assert ours.images.dtype == images.dtype and ours.labels.dtype == labels.dtype == torch.int64
        assert torch.equal(ours.images, images) and torch.equal(ours.labels, labels)


def test_class_names_are_torchvisions():
    from torchvision import datasets

    assert DATASETS.get("fashion_mnist").class_names() == datasets.FashionMNIST.classes
    assert DATASETS.get("kmnist").class_names() == datasets.KMNIST.classes
    for split, names in datasets.EMNIST.classes_split_dict.items():
        assert DATASETS.get("emnist").class_names(split=split) == names


def test_torchvisions_older_processed_files_still_load(tmp_path, data_root):
    """A folder with torchvision's legacy processed/*.pt and no raw files goes through torchvision."""
    expected = {train: torchvision_split(data_root, "mnist", train) for train in (True, False)}
    (tmp_path / "MNIST" / "processed").mkdir(parents=True)
    for train, name in ((True, "training.pt"), (False, "test.pt")):
        torch.save(expected[train], tmp_path / "MNIST" / "processed" / name)
    split = DATASETS.get("mnist").load(tmp_path, train=True, download=False)
    assert torch.equal(split.images, expected[True][0]) and torch.equal(split.labels, expected[True][1])


def test_missing_file_and_unknown_emnist_split_are_clear_errors(tmp_path, data_root, all_data_root):
    from mnist_runner.data import load_data

    with pytest.raises(ConfigError, match="dataset.split='bogus' is not allowed; it must be one of: byclass"):
        validate(compose_config(f"dataset.root={all_data_root}", "dataset=emnist", "dataset.split=bogus"))
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    shutil.copy(data_root / "MNIST" / "raw" / "train-images-idx3-ubyte", tmp_path / "MNIST" / "raw")
    cfg = compose_config(f"dataset.root={tmp_path}", "dataset.download=false")
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte is missing\)\. Point the runner at a folder"):
        load_data(cfg.dataset, torch.device("cpu"))


RUN_PATH = """
import json, sys
sys.argv = ["mnist_runner", *sys.argv[1:]]
from mnist_runner.train import main
main()
print("MODULES " + json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("torchvision", "matplotlib"))))
"""


@pytest.mark.slow
def test_a_run_on_present_data_never_imports_torchvision(tmp_path, data_root):
    args = [
        f"dataset.root={data_root}",
        "device=cpu",
        "trainer.epochs=1",
        "trainer.progress=false",
        "report.plots=false",
    ]
    result = subprocess.run(
        [sys.executable, "-c", RUN_PATH, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout.split("MODULES ", 1)[1])
    assert modules == []  # neither torchvision nor, with report.plots=false, matplotlib
    summary = json.loads((run_folders(tmp_path / "outputs")[0] / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["versions"]["torchvision"]  # from package metadata


# --- trainer.threads=null ------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch):
    """No thread settings from the environment, and a known number of cores."""
    for name in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cpu, "available_cores", lambda: 8)
    monkeypatch.setattr(speed, "_TORCH_DEFAULT_THREADS", 8)
    monkeypatch.setattr(cpu, "other_work", lambda: 0.0)  # an idle machine
    threads = torch.get_num_threads()
    yield monkeypatch
    torch.set_num_threads(threads)


@pytest.fixture
def hydra_job():
    """Make HydraConfig answer as it does inside a job of the composed `overrides`."""
    from hydra.core.hydra_config import HydraConfig

    def enter(*overrides):
        HydraConfig.instance().set_config(compose_config(*overrides))

    yield enter
    HydraConfig.instance().cfg = None


def test_a_single_run_uses_every_core(clean_env):
    assert speed.cpu_threads() == (8, "8 cores")
    assert speed.default_threads(torch.device("cpu")) == (8, "8 cores")


def test_other_work_is_recorded_and_a_note_suggests_fewer_threads(clean_env, capsys):
    trainer = compose_config().trainer
    chosen = speed.configure(trainer, torch.device("cpu"))
    assert (chosen.threads, chosen.other_work) == (8, 0.0) and capsys.readouterr().out == ""
    clean_env.setattr(cpu, "other_work", lambda: 2.0)  # the threads do not follow the load...
    chosen = speed.configure(trainer, torch.device("cpu"))
    assert (chosen.threads, chosen.other_work) == (8, 2.0)
    note = capsys.readouterr()  # ...a note says so, on stdout with the epoch lines (stderr is for errors)
    assert note.err == ""
    note = note.out
    assert "other processes kept 2.0 of the 8 cores busy" in note and "trainer.threads=6" in note


def test_other_work_is_the_cores_busy_time_less_this_process_own(monkeypatch):
    readings = iter([(10.0, 100.0, 5.0), (12.0, 103.5, 6.5)])  # 2 s: cores busy 3.5 s, of which 1.5 s ours
    monkeypatch.setattr(cpu, "_counters", lambda: next(readings))
    cpu.prepare()
    assert cpu.other_work() == pytest.approx(1.0)
    monkeypatch.setattr(cpu, "_last", None)  # no /proc/stat
    assert cpu.other_work() is None


def test_environment_settings_win(clean_env):
    clean_env.setenv("SLURM_CPUS_PER_TASK", "4")
    assert speed.cpu_threads() == (4, "SLURM_CPUS_PER_TASK")
    clean_env.setenv("OMP_NUM_THREADS", "3")  # joblib's workers get cores // n_jobs this way
    assert speed.cpu_threads() == (3, "OMP_NUM_THREADS")
    clean_env.setenv("OMP_NUM_THREADS", "")
    assert speed.cpu_threads() == (4, "SLURM_CPUS_PER_TASK")


@pytest.mark.parametrize(
    "n_jobs, expected",
    [
        (2, (4, "8 cores / 2 parallel jobs")),
        (-1, (1, "8 cores / 8 parallel jobs")),
        (-3, (1, "8 cores / 6 parallel jobs")),
        (1, (8, "8 cores")),
    ],
)
def test_a_parallel_launcher_divides_the_cores(clean_env, hydra_job, n_jobs, expected):
    hydra_job("hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}", "hydra.mode=MULTIRUN")
    assert speed.cpu_threads() == expected


def test_a_sequential_sweep_and_a_single_run_of_the_joblib_config_use_every_core(clean_env, hydra_job):
    hydra_job("hydra.mode=MULTIRUN")  # the basic launcher: one job at a time
    assert speed.cpu_threads() == (8, "8 cores")
    hydra_job("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.mode=RUN")
    assert speed.cpu_threads() == (8, "8 cores")


def test_resumed_threads_and_explicit_threads_win_and_gpus_keep_torchs_default(clean_env):
    trainer = compose_config().trainer
    assert speed.configure(trainer, torch.device("cpu"), resumed_threads=3).threads_from == "the resumed run"
    assert torch.get_num_threads() == 3
    trainer.threads = 2
    chosen = speed.configure(trainer, torch.device("cpu"), resumed_threads=3)
    assert (chosen.threads, chosen.threads_from) == (2, "trainer.threads")
    assert speed.default_threads(torch.device("cuda"))[1] == "PyTorch's default"


@pytest.mark.slow
def test_threads_are_recorded_and_a_resumed_run_keeps_them(tmp_path, data_root, monkeypatch):
    threads = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "3")  # as another machine (or launcher) would choose
        first = run_cli_in_process(tmp_path, data_root, "trainer.epochs=1", "report.plots=false")
        assert first.returncode == 0, first.stderr
        (run,) = run_folders(tmp_path / "outputs")
        summary = json.loads((run / "summary.json").read_text())
        assert (summary["speed"]["threads"], summary["speed"]["threads_from"]) == (3, "OMP_NUM_THREADS")

        monkeypatch.delenv("OMP_NUM_THREADS")  # here the default would be every core
        resumed = run_cli_in_process(tmp_path, data_root, f"resume={run}", "trainer.epochs=2", "report.plots=false")
        assert resumed.returncode == 0, resumed.stderr
        summary = json.loads((run / "summary.json").read_text())
        assert summary["epochs_completed"] == 2
        assert (summary["speed"]["threads"], summary["speed"]["threads_from"]) == (3, "the resumed run")

        told = run_cli_in_process(tmp_path, data_root, f"resume={run}", "trainer.epochs=3", "trainer.threads=1")
        assert told.returncode == 0, told.stderr
        assert json.loads((run / "summary.json").read_text())["speed"]["threads"] == 1
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_joblib_jobs_share_the_cores(tmp_path, data_root):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    from joblib import cpu_count

    expected = max(1, cpu_count() // 2)  # what joblib puts in its workers' OMP_NUM_THREADS
    sweep = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1", "trainer.epochs=1"]
    result = run_cli_in_process(tmp_path, data_root, *sweep, "report.plots=false")
    assert result.returncode == 0, result.stderr
    runs = run_folders(tmp_path / "multirun")
    assert len(runs) == 2
    for run in runs:
        assert json.loads((run / "summary.json").read_text())["speed"]["threads"] == expected


def test_the_command_line_sets_openmps_spin_count_before_torch_starts():
    code = "from mnist_runner import cpu; import os; print(cpu.prepare(), os.environ['GOMP_SPINCOUNT'])"
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60).stdout
    assert out.split() == ["True", cpu.SETTINGS["GOMP_SPINCOUNT"]]
    source = (Path(__file__).parents[1] / "mnist_runner" / "train.py").read_text()
    assert source.index("cpu.prepare()") < source.index("plugins.prepare(")  # before any plugin imports torch
