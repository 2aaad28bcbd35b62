"""Experiment trackers (issue 14): several loggers at once, MLflow against a real tracking server, W&B offline.

The MLflow tests start `mlflow server` (SQLite store, artifacts folder, a free local port) from this
environment, beside every other extra (issue 19: the sweep extra no longer pins SQLAlchemy below 2), and
query it with MlflowClient.
"""

import csv
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import run_folders
from omegaconf import OmegaConf

from mnist_runner import loggers
from mnist_runner.registry import LOGGERS, ConfigError


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def summary_of(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


# --- the logger group, and what Loggers does with a logger that fails -----------------------------


def compose_logger(*overrides: str, searchpath: Path | None = None) -> dict:
    from hydra import compose, initialize_config_dir

    from mnist_runner.config import config_dir

    extra = [f"hydra.searchpath=[file://{searchpath}]"] if searchpath else []
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=[*extra, *overrides])
    return OmegaConf.to_container(cfg.logger)


def test_logger_group_is_a_dict_keyed_by_logger_on_the_command_line_and_in_yaml(tmp_path):
    assert compose_logger() == {} and compose_logger("logger=none") == {}
    assert compose_logger("logger=tensorboard") == {"tensorboard": {"subdir": "tensorboard"}}
    both = compose_logger("logger=[tensorboard,mlflow]", "logger.mlflow.log_model=false")
    assert list(both) == ["tensorboard", "mlflow"] and both["mlflow"]["log_model"] is False
    experiment = tmp_path / "experiment" / "tracked.yaml"
    experiment.parent.mkdir()
    experiment.write_text("# @package _global_\ndefaults:\n  - override /logger: [tensorboard, wandb]\n")
    assert list(compose_logger("experiment=tracked", searchpath=tmp_path)) == ["tensorboard", "wandb"]
    # run folders written when one logger at a time was possible still resume
    assert loggers.selected(OmegaConf.create({"name": "tensorboard", "subdir": "tb"})) == {
        "tensorboard": {"subdir": "tb"}
    }
    assert loggers.selected(OmegaConf.create({"name": "none"})) == {}


class Recorder(loggers.Logger):
    """A logger that records its calls, and fails on the epoch named by `fail_at`."""

    calls: list = []

    def __init__(self, run, state, fail_at: int = 0):
        super().__init__(run, state)
        self.fail_at = fail_at

    def log_epoch(self, row, steps):
        if row["epoch"] == self.fail_at:
            raise ConnectionError("cannot reach the tracker")
        Recorder.calls.append(("epoch", row["epoch"], [s[0] for s in steps]))

    def close(self, summary):
        Recorder.calls.append(("close", summary["status"]))


LOGGERS.register("recorder")(Recorder)


def start_recorder(folder: Path, **options):
    cfg = OmegaConf.create({"logger": {"recorder": options}, "seed": 0})
    return loggers.start(cfg, folder, {"model": "mlp"}, ["seed=0"])


def test_a_failing_logger_costs_one_warning_and_is_recorded_as_missed(tmp_path, capsys):
    Recorder.calls = []
    run = start_recorder(tmp_path, fail_at=2)
    for epoch in (1, 2, 3):
        run.log_epoch({"epoch": epoch, "test_acc": 0.5}, [(100 * epoch, 1.0)])
    summary = {"status": "completed"}
    run.close(summary)
    assert Recorder.calls == [("epoch", 1, [100])]  # dropped after the failure: no epoch 3, no close
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("Warning: logger recorder failed (ConnectionError: cannot reach")
    assert f"python -m mnist_runner.loggers {tmp_path} logger=recorder" in warning[0]
    record = summary["loggers"]["recorder"]
    assert record["status"] == "missed" and record["epochs_logged"] == 1 and "cannot reach" in record["error"]
    assert record["log_afterwards"] == f"python -m mnist_runner.loggers {tmp_path} logger=recorder"

    Recorder.calls = []  # logged again (a resumed or replayed run): only what was not logged yet
    again = start_recorder(tmp_path)
    for epoch in (1, 2, 3):
        again.log_epoch({"epoch": epoch, "test_acc": 0.5}, [(100 * e, 1.0) for e in (1, 2, 3)])
    summary = {"status": "completed"}
    again.close(summary)
    assert Recorder.calls == [("epoch", 2, [200, 300]), ("epoch", 3, []), ("close", "completed")]
    assert summary["loggers"]["recorder"] == {"status": "logged", "epochs_logged": 3, "examples_logged": 300}


def test_bad_logger_options_and_a_missing_package_are_one_line_config_errors(tmp_path, monkeypatch):
    with pytest.raises(
        ConfigError,
        match=r"logger.recorder.fail_after=1 is not an option of logger recorder; "
        r"its options: fail_at",
    ):
        start_recorder(tmp_path, fail_after=1)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    with pytest.raises(
        ConfigError, match=r"logger=mlflow needs the mlflow package .*pip install 'mnist-runner\[mlflow\]'"
    ):
        loggers.start(OmegaConf.create({"logger": {"mlflow": {}}}), tmp_path, {}, [])
    with pytest.raises(ConfigError, match="logger.wandb.mode='onlin' is not allowed; choose one of: offline, online"):
        loggers.start(OmegaConf.create({"logger": {"wandb": {"mode": "onlin"}}}), tmp_path, {}, [])


# --- MLflow against a real tracking server --------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_executable() -> str:
    """This environment's `mlflow`, which serves beside the other extras."""
    return str(Path(sys.executable).parent / "mlflow")


@pytest.mark.slow
def test_mlflow_serves_beside_every_other_extra():
    """`mlflow server` and `mlflow ui` need SQLAlchemy 2; hydra-optuna-sweeper's pin below 2 crashed them at start."""
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
    import sqlalchemy

    assert int(sqlalchemy.__version__.split(".")[0]) >= 2 and hasattr(sqlalchemy, "Engine")
    result = subprocess.run([server_executable(), "server", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--backend-store-uri" in result.stdout, result.stderr


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on a free local port (SQLite store, artifacts folder); its URI."""
    pytest.importorskip("mlflow", reason="logger=mlflow tests need the mlflow extra: pip install -e '.[mlflow]'")
    executable = server_executable()
    folder = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    log = open(folder / "server.log", "w")
    process = subprocess.Popen(
        [
            executable,
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder}/mlflow.db",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # no job-runner processes
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # it creates its database first: a minute on a busy machine
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (folder / "server.log").read_text()[-3000:]
                pytest.fail(f"mlflow server did not start (exit code {process.poll()}):\n{tail}")
            time.sleep(1)
        yield uri
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server and every process it started
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # what is left of its group
        except ProcessLookupError:
            pass
        process.wait()
        log.close()


def client_of(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def artifacts(client, run_id: str, path: str | None = None) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id, path)}


@pytest.mark.slow
def test_mlflow_run_its_resume_and_a_replay_log_each_epoch_once(mlflow_server, cli, tmp_path):
    uri = mlflow_server
    tracked = ("logger=[tensorboard,mlflow]", f"logger.mlflow.tracking_uri={uri}", "logger.mlflow.experiment=single")
    result = cli("trainer.epochs=1", "trainer.log_interval=1", *tracked)
    assert result.returncode == 0, result.stderr
    (folder,) = run_folders(tmp_path / "outputs")
    summary = summary_of(folder)
    record = summary["loggers"]["mlflow"]
    assert record["status"] == "logged" and record["tracking_uri"] == uri
    assert summary["loggers"]["tensorboard"]["status"] == "logged" and (folder / "tensorboard").is_dir()

    client = client_of(uri)
    run = client.get_run(record["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "/".join(folder.parts[-2:])
    assert client.get_experiment(run.info.experiment_id).name == "single"
    params = run.data.params
    assert params["model"] == "lenet_full" and params["optimizer"] == "sgd"  # the choices
    assert params["optimizer.lr"] == "0.1" and params["trainer.batch_size"] == "100"  # the flattened config
    tags = run.data.tags
    assert tags["status"] == "completed" and tags["device"] == "cpu" and tags["seed"] == "0"
    assert tags["versions.torch"] == summary["versions"]["torch"] and tags["run_folder"] == str(folder)
    rows = read_csv(folder / "metrics.csv")
    for column in rows[0]:
        if column != "epoch":
            assert history(client, run.info.run_id, column) == [(1, pytest.approx(float(rows[0][column]), rel=1e-4))]
    steps = read_csv(folder / "train_steps.csv")  # 300 images, batch 100: 3 logged steps per epoch
    assert history(client, run.info.run_id, "train_step_loss") == [
        (int(s["examples_seen"]), pytest.approx(float(s["loss"]), rel=1e-4)) for s in steps
    ]
    assert {"summary.json", "metrics.csv", "train_steps.csv", "model.pt", "hydra", "plots"} <= artifacts(
        client, run.info.run_id
    )
    assert "hydra/config.yaml" in artifacts(client, run.info.run_id, "hydra")
    assert "plots/loss.png" in artifacts(client, run.info.run_id, "plots")

    # resumed for a second epoch: the same MLflow run continues
    result = cli(f"resume={folder}", "trainer.epochs=2")
    assert result.returncode == 0, result.stderr
    assert summary_of(folder)["loggers"]["mlflow"]["run_id"] == run.info.run_id
    assert [s for s, _ in history(client, run.info.run_id, "test_acc")] == [1, 2]
    assert [s for s, _ in history(client, run.info.run_id, "train_step_loss")] == [100, 200, 300, 400, 500, 600]
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert len(client.search_runs([run.info.experiment_id])) == 1

    # logged again afterwards: nothing twice
    from mnist_runner.loggers.replay import main as replay

    assert replay([str(folder)]) == 0
    assert [s for s, _ in history(client, run.info.run_id, "test_acc")] == [1, 2]
    assert len(client.search_runs([run.info.experiment_id])) == 1


@pytest.mark.slow
def test_mlflow_sweep_is_a_parent_run_with_its_jobs_under_it(mlflow_server, cli, tmp_path):
    uri = mlflow_server
    result = cli(
        "-m",
        "optimizer.lr=1e10,0.1",
        "model=mlp_128",
        "trainer.epochs=1",
        "report.plots=false",
        "logger=mlflow",
        f"logger.mlflow.tracking_uri={uri}",
        "logger.mlflow.experiment=sweep",
    )
    assert result.returncode == 0, result.stdout + result.stderr  # the first job diverges, the second completes
    client = client_of(uri)
    experiment = client.get_experiment_by_name("sweep")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("sweep") == "true"]
    jobs = sorted((r for r in runs if r is not parent), key=lambda r: r.info.run_name)
    assert len(jobs) == 2 and all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in jobs)
    assert [r.data.params["optimizer.lr"] for r in jobs] == ["10000000000.0", "0.1"]
    assert [(r.data.tags["status"], r.info.status) for r in jobs] == [("diverged", "FAILED"), ("completed", "FINISHED")]
    assert parent.info.status == "FINISHED"  # a diverged job does not fail the sweep (sweep.py)
    sweep = next((tmp_path / "multirun").glob("*/*"))
    assert parent.info.run_name == "/".join(sweep.parts[-2:])
    assert {"sweep_summary.csv", "sweep_summary.md", "multirun.yaml"} <= artifacts(client, parent.info.run_id)
    assert "MNIST_RUNNER_MLFLOW_PARENT" not in os.environ  # the jobs of a later run are not put under it


@pytest.mark.slow
def test_mlflow_run_status_follows_the_summary_and_log_model_false_leaves_the_weights_out(mlflow_server, tmp_path):
    client = client_of(mlflow_server)
    expected = {"completed": "FINISHED", "interrupted": "KILLED", "diverged": "FAILED", "failed": "FAILED"}
    for status, mlflow_status in expected.items():
        folder = tmp_path / status
        folder.mkdir()
        (folder / "model.pt").write_bytes(b"weights")
        (folder / "metrics.csv").write_text("epoch,test_acc\n1,0.5\n")
        cfg = OmegaConf.create(
            {
                "logger": {"mlflow": {"tracking_uri": mlflow_server, "experiment": "statuses", "log_model": False}},
                "seed": 3,
            }
        )
        run = loggers.start(cfg, folder, {"model": "mlp"}, ["seed=3"])
        run.log_epoch({"epoch": 1, "test_acc": 0.5}, [])
        summary = {"status": status, "device": "cpu", "seed": 3, "versions": {"torch": "x"}, "error": "boom"}
        run.close(summary)
        logged = client.get_run(summary["loggers"]["mlflow"]["run_id"])
        assert logged.info.status == mlflow_status and logged.data.tags["status"] == status
        assert logged.data.tags["error"] == "boom" and logged.data.params["seed"] == "3"
        assert artifacts(client, logged.info.run_id) == {"metrics.csv"}  # no model.pt


@pytest.mark.slow
def test_a_tracking_server_that_is_down_costs_the_runs_nothing_and_they_are_logged_afterwards(
    mlflow_server, cli, tmp_path
):
    down = f"http://127.0.0.1:{free_port()}"
    result = cli(
        "-m",
        "seed=1,2",
        "trainer.epochs=1",
        "report.plots=false",
        "logger=mlflow",
        f"logger.mlflow.tracking_uri={down}",
        "logger.mlflow.experiment=late",
    )
    assert result.returncode == 0, result.stderr
    jobs = run_folders(tmp_path / "multirun")
    warnings = [line for line in result.stderr.splitlines() if "mlflow" in line]
    assert len(warnings) == 3  # the sweep's parent run, then each job: one line each
    assert warnings[0].startswith("Warning: logger mlflow: the sweep's parent run could not be started")
    for job, warning in zip(jobs, warnings[1:]):
        assert warning.startswith(
            f"Warning: logger mlflow failed (ConnectionError: cannot reach the MLflow tracking server at {down}"
        )
        assert warning.endswith(f"Log it afterwards: python -m mnist_runner.loggers {job} logger=mlflow")
        summary = summary_of(job)
        assert summary["status"] == "completed" and (job / "model.pt").is_file() and (job / "metrics.csv").is_file()
        assert summary["loggers"]["mlflow"]["status"] == "missed" and down in summary["loggers"]["mlflow"]["error"]

    from mnist_runner.loggers.replay import main as replay

    sweep = jobs[0].parent
    assert replay([str(sweep), "logger=mlflow", f"logger.mlflow.tracking_uri={mlflow_server}"]) == 0
    client = client_of(mlflow_server)
    parent = client.get_run(json.loads((sweep / "loggers.json").read_text())["mlflow"]["run_id"])
    assert parent.info.status == "FINISHED" and "sweep_summary.csv" in artifacts(client, parent.info.run_id)
    assert client.get_experiment(parent.info.experiment_id).name == "late"
    for job in jobs:
        record = summary_of(job)["loggers"]["mlflow"]
        assert record["status"] == "logged" and record["tracking_uri"] == mlflow_server
        run = client.get_run(record["run_id"])
        assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert [s for s, _ in history(client, record["run_id"], "test_acc")] == [1]


# --- Weights & Biases, offline --------------------------------------------------------------------


def wandb_records(path: Path):
    """The records of a W&B run file: LevelDB-log framing (32 KiB blocks, 7-byte chunk headers) of protobufs."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    pos, record = 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            break
        record = (b"" if kind in (1, 2) else record) + data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # full, or last chunk
            message = wandb_internal_pb2.Record()
            message.ParseFromString(record)
            yield message


def key_of(item) -> str:
    return item.key or ".".join(item.nested_key)


@pytest.mark.slow
def test_wandb_offline_run_holds_config_metrics_summary_files_and_model_and_resumes(cli, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="logger=wandb tests need the wandb extra: pip install -e '.[wandb]'")
    for key in ("WANDB_MODE", "WANDB_RUN_GROUP", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    for key in ("WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.setenv(key, str(tmp_path / "wandb_home"))
    result = cli("trainer.epochs=2", "trainer.log_interval=1", "logger=wandb")
    assert result.returncode == 0, result.stderr
    (folder,) = run_folders(tmp_path / "outputs")
    record = summary_of(folder)["loggers"]["wandb"]
    assert record["status"] == "logged" and record["mode"] == "offline"
    offline = Path(record["dir"])
    assert offline.parent == folder / "wandb" and offline.name.startswith("offline-run-")
    assert f"wandb sync {offline}" in result.stdout

    records = list(wandb_records(offline / f"run-{record['run_id']}.wandb"))
    run = next(r.run for r in records if r.HasField("run"))
    assert run.run_id == record["run_id"] and run.project == "mnist_runner"
    assert run.display_name == "/".join(folder.parts[-2:])
    config = {u.key: json.loads(u.value_json) for u in run.config.update}
    assert config["optimizer"]["lr"] == 0.1 and config["choices"]["model"] == "lenet_full"
    rows = [{key_of(i): json.loads(i.value_json) for i in r.history.item} for r in records if r.HasField("history")]
    epochs = [r for r in rows if "epoch" in r]
    metrics = read_csv(folder / "metrics.csv")
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert [r["test_acc"] for r in epochs] == [pytest.approx(float(m["test_acc"]), rel=1e-4) for m in metrics]
    assert [r["examples_seen"] for r in rows if "train_step_loss" in r] == [100, 200, 300, 400, 500, 600]
    summary = {key_of(u): json.loads(u.value_json) for r in records if r.HasField("summary") for u in r.summary.update}
    assert summary["status"] == "completed" and summary["device"] == "cpu"
    artifacts = {r.artifact.type: r.artifact for r in records if r.HasField("artifact")}
    assert set(artifacts) == {"run-files", "model"} and artifacts["model"].name == f"model-{record['run_id']}"
    contents = {entry.path for entry in artifacts["run-files"].manifest.contents}
    assert {"summary.json", "metrics.csv", "hydra/config.yaml", "plots/loss.png"} <= contents
    assert [entry.path for entry in artifacts["model"].manifest.contents] == ["model.pt"]
    assert run_folders(folder) == [folder]  # no copy of summary.json below the run folder
    assert any(r.HasField("exit") and r.exit.exit_code == 0 for r in records)

    # resumed for a third epoch: the same W&B run id, resumed, and only the new epoch and steps in it
    result = cli(f"resume={folder}", "trainer.epochs=3")
    assert result.returncode == 0, result.stderr
    again = summary_of(folder)["loggers"]["wandb"]
    assert again["status"] == "logged" and again["run_id"] == record["run_id"]
    resumed = Path(again["dir"])
    assert resumed.parent == folder / "wandb" and resumed != offline
    records = list(wandb_records(resumed / f"run-{record['run_id']}.wandb"))
    run = next(r.run for r in records if r.HasField("run"))
    assert run.run_id == record["run_id"] and run.resume  # `wandb sync` continues the run
    rows = [{key_of(i): json.loads(i.value_json) for i in r.history.item} for r in records if r.HasField("history")]
    assert [r["epoch"] for r in rows if "epoch" in r] == [3]
    assert [r["examples_seen"] for r in rows if "train_step_loss" in r] == [700, 800, 900]
    shutil.rmtree(tmp_path / "wandb_home", ignore_errors=True)
