"""`logger=mlflow`: one MLflow run per job, a multirun's jobs under one parent run (extra `mlflow`).

The tracker run is named after the run folder, in experiment `logger.mlflow.experiment` (default:
Hydra's job name, `mnist_runner`), at `logger.mlflow.tracking_uri` (default: MLFLOW_TRACKING_URI when
set, else MLflow's own default: a local store in the current directory, beside outputs/). It gets:
- params: every choice (`model`, `optimizer`, ...) and the flattened composed config (`optimizer.lr`);
- metrics: every metrics.csv column per epoch (step = epoch), the logged training losses of
  train_steps.csv as `train_step_loss` (step = examples seen), and at the end `best_test_acc`;
- tags: `status` (summary.json's), `device`, `seed`, `versions.*`, `run_folder`; the MLflow run ends
  FINISHED (completed), KILLED (interrupted) or FAILED (diverged, failed);
- artifacts: summary.json, metrics.csv, train_steps.csv, confusion_matrix.csv, model_summary.txt,
  hydra/ (.hydra/*.yaml), plots/ and model.pt (`logger.mlflow.log_model=false` leaves the weights out).

One `log_batch` call per epoch: nothing goes over the network inside an epoch. HTTP requests are
retried twice with a 15 s timeout (MLflow's own defaults would wait minutes for a server that is
down); the MLFLOW_HTTP_REQUEST_* environment variables, when set, win.
"""

import functools
import json
import os
import platform
import re
import time
from pathlib import Path

from ..run_folder import ARTIFACTS, CONFIG, HYDRA, MODEL, OVERRIDES, PLOTS, RunFolder
from . import Logger, RunInfo, needs

PARENT_ENV = "MNIST_RUNNER_MLFLOW_PARENT"  # {"run_id", "tracking_uri"} of the sweep's parent run, for its jobs
RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}
STATUS = {"completed": "FINISHED", "interrupted": "KILLED", "diverged": "FAILED", "failed": "FAILED"}
SWEEP_ARTIFACTS = [
    "sweep_summary.csv",
    "sweep_summary.md",
    "sweep.png",
    "sweep_groups.csv",
    "sweep_groups.md",
    "multirun.yaml",
]
MAX_PARAMS, MAX_METRICS = 100, 1000  # per log_batch call (MLflow's limits)


def client_for(tracking_uri: str | None):
    """(MlflowClient, its tracking URI): `tracking_uri`, else MLFLOW_TRACKING_URI or MLflow's default."""
    mlflow = needs("mlflow", "mlflow")
    for key, value in RETRIES.items():
        os.environ.setdefault(key, value)
    from mlflow.tracking import MlflowClient

    uri = str(tracking_uri) if tracking_uri else mlflow.get_tracking_uri()
    return MlflowClient(tracking_uri=uri), uri


def unreachable(error: Exception, uri: str) -> Exception:
    """A short ConnectionError for a server that cannot be reached (MLflow's message is a paragraph)."""
    text = str(error)
    cause = re.search(r"\[Errno -?\d+\][^'\")]*|Read timed out|timed out", text)
    if cause and ("Max retries exceeded" in text or "timed out" in text):
        return ConnectionError(f"cannot reach the MLflow tracking server at {uri}: {cause.group().strip()}")
    return error


def experiment_id(client, name: str) -> str:
    """The id of experiment `name`, created when it does not exist (by this job or a parallel one)."""
    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return client.create_experiment(name)
        except Exception:  # a parallel job created it first
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    return found.experiment_id


def explained(method):
    """A method whose errors from an unreachable server read as one short line."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as e:
            raise unreachable(e, getattr(self, "uri", "?")) from None

    return wrapper


class MlflowLogger(Logger):
    @explained
    def __init__(self, run: RunInfo, state: dict, tracking_uri=None, experiment=None, log_model=True):
        super().__init__(run, state)
        self.log_model = bool(log_model)
        # a resumed (or replayed) run goes where it was logged, unless a tracking URI is given
        self.client, self.uri = client_for(tracking_uri or state.get("tracking_uri"))
        if state.get("run_id") and state.get("tracking_uri") == self.uri:
            self.client.update_run(state["run_id"], status="RUNNING")
            self.run_id = state["run_id"]
            return
        state.clear()  # a new tracker run: nothing logged to it yet
        experiment_name = experiment or run.job_name
        exp_id = experiment_id(self.client, experiment_name)
        tags = {"run_folder": str(run.folder.resolve()), "overrides": " ".join(run.overrides)[:5000]}
        parent = json.loads(os.environ.get(PARENT_ENV) or "{}")
        if parent.get("tracking_uri") == self.uri:
            tags["mlflow.parentRunId"] = parent["run_id"]
        self.run_id = self.client.create_run(exp_id, run_name=run.name, tags=tags).info.run_id
        state.update(run_id=self.run_id, tracking_uri=self.uri, experiment=experiment_name, experiment_id=exp_id)
        self._log(params=[(k, v) for k, v in params(run).items()])

    @explained
    def log_epoch(self, row: dict, steps: list[tuple[int, float]]) -> None:
        now, epoch = int(time.time() * 1000), int(row["epoch"])
        metrics = [(k, float(v), now, epoch) for k, v in row.items() if k != "epoch" and _is_number(v)]
        metrics += [("train_step_loss", float(loss), now, int(seen)) for seen, loss in steps]
        self._log(metrics=metrics)

    @explained
    def close(self, summary: dict) -> None:
        status = str(summary.get("status"))
        tags = {"status": status, "device": summary.get("device"), "seed": summary.get("seed")}
        tags.update({f"versions.{k}": v for k, v in (summary.get("versions") or {}).items()})
        tags["versions.python"] = platform.python_version()
        if summary.get("error"):
            tags["error"] = str(summary["error"])[:5000]
        now = int(time.time() * 1000)
        metrics = [
            (k, float(summary[k]), now, 0)
            for k in ("best_test_acc", "epochs_completed", "wall_seconds")
            if _is_number(summary.get(k))
        ]
        self._log(metrics=metrics, tags=[(k, "" if v is None else str(v)) for k, v in tags.items()])
        folder = self.run.folder
        for name in ARTIFACTS:
            if (folder / name).is_file():
                self.client.log_artifact(self.run_id, str(folder / name))
        for name in (CONFIG, OVERRIDES, HYDRA):
            if (folder / name).is_file():
                self.client.log_artifact(self.run_id, str(folder / name), "hydra")
        if (folder / PLOTS).is_dir():
            self.client.log_artifacts(self.run_id, str(folder / PLOTS), PLOTS)
        if self.log_model and (folder / MODEL).is_file():
            self.client.log_artifact(self.run_id, str(folder / MODEL))
        self.client.set_terminated(self.run_id, STATUS.get(status, "FAILED"))

    def _log(self, metrics=(), params=(), tags=()) -> None:
        """log_batch in chunks within MLflow's limits (1000 metrics; 100 params and tags)."""
        from mlflow.entities import Metric, Param, RunTag

        metrics, keyed = [Metric(*m) for m in metrics], [Param(*p) for p in params] + [RunTag(*t) for t in tags]
        for i in range(0, len(metrics), MAX_METRICS):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + MAX_METRICS])
        for i in range(0, len(keyed), MAX_PARAMS):
            chunk = keyed[i : i + MAX_PARAMS]
            self.client.log_batch(
                self.run_id,
                params=[e for e in chunk if isinstance(e, Param)],
                tags=[e for e in chunk if isinstance(e, RunTag)],
            )


def params(run: RunInfo) -> dict[str, str]:
    """Every choice (`model`: `lenet_full`) and every key of the flattened config (`optimizer.lr`: `0.1`)."""
    from ..results.runs import flatten

    values = {k: v for k, v in run.choices.items() if isinstance(v, str)}
    values.update(flatten(run.config))
    return {k: (v if isinstance(v, str) else json.dumps(v))[:6000] for k, v in values.items()}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- a multirun's parent run ----------------------------------------------------------------------


def start_parent(folder: Path, job_name: str, overrides: list[str], tracking_uri=None, experiment=None, log_model=True):
    """Start (or continue) the sweep's parent run; its jobs find it in the environment (PARENT_ENV).

    Jobs started by other processes (joblib, submitit) inherit the environment variable; the parent's
    id is kept in SWEEP_FOLDER/loggers.json too.
    """
    states = RunFolder(folder).logged()
    state = states.setdefault("mlflow", {})
    client, uri = client_for(tracking_uri or state.get("tracking_uri"))
    if state.get("run_id") and state.get("tracking_uri") == uri:
        client.update_run(state["run_id"], status="RUNNING")
    else:
        name = experiment or job_name
        exp_id = experiment_id(client, name)
        tags = {"run_folder": str(folder.resolve()), "sweep": "true", "overrides": " ".join(overrides)[:5000]}
        run_id = client.create_run(exp_id, run_name="/".join(folder.resolve().parts[-2:]), tags=tags).info.run_id
        state.clear()
        state.update(run_id=run_id, tracking_uri=uri, experiment=name, experiment_id=exp_id)
    RunFolder(folder).write_logged(states)
    os.environ[PARENT_ENV] = json.dumps({"run_id": state["run_id"], "tracking_uri": uri})


def end_parent(folder: Path, failed: int) -> None:
    """The sweep summary files to the parent run, which ends FAILED when a job failed, else FINISHED."""
    os.environ.pop(PARENT_ENV, None)
    state = RunFolder(folder).logged().get("mlflow")
    if not state or not state.get("run_id"):
        return
    client, _ = client_for(state["tracking_uri"])
    for name in SWEEP_ARTIFACTS:
        if (folder / name).is_file():
            client.log_artifact(state["run_id"], str(folder / name))
    client.set_terminated(state["run_id"], "FAILED" if failed else "FINISHED")
