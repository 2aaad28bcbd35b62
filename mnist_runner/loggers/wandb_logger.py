"""`logger=wandb`: one Weights & Biases run per job (extra `wandb`), offline unless asked otherwise.

`logger.wandb.mode`: `offline` (the default unless WANDB_MODE is set) writes the run into
RUN_FOLDER/wandb/offline-run-*/, to be sent later with `wandb sync RUN_FOLDER/wandb/offline-run-*`;
`online` sends it as it goes (after `wandb login`). The run is named after the run folder, in project
`logger.wandb.project` (default: Hydra's job name), a multirun's jobs in one group (the sweep folder).
It gets the composed config and the choices as its config; every metrics.csv column per epoch
against `epoch`, the logged training losses as `train_step_loss` against `examples_seen`; at the end
status, device, seed and versions (summary and config); summary.json, metrics.csv, the config and the
plots as a `run-files` artifact (not as W&B run files: a copy of summary.json below the run folder
would count as a run of its own), and model.pt as a `model` artifact (`logger.wandb.log_model=false`
skips it).
"""

import os
import uuid
from pathlib import Path

from .. import console
from ..registry import ConfigError
from ..run_folder import ARTIFACTS, CONFIG, HYDRA_DIR, MODEL, PLOTS, STATUSES
from . import Logger, RunInfo, needs

MODES = ("offline", "online", "disabled")
FILES = [*ARTIFACTS, CONFIG, f"{PLOTS}/*.png"]  # summary.json's status is a tag of the run (STATUSES)


class WandbLogger(Logger):
    def __init__(self, run: RunInfo, state: dict, project=None, entity=None, mode=None, log_model=True):
        super().__init__(run, state)
        mode = mode or os.environ.get("WANDB_MODE") or "offline"
        if mode not in MODES:
            raise ConfigError(f"logger.wandb.mode={mode!r} is not allowed; choose one of: {', '.join(MODES)}")
        wandb = needs("wandb", "wandb")
        self.wandb, self.log_model = wandb, bool(log_model)
        run_id = state.get("run_id") or uuid.uuid4().hex[:8]
        self.wb = wandb.init(
            project=project or run.job_name,
            entity=entity,
            name=run.name,
            id=run_id,
            resume="allow",
            dir=str(run.folder),
            mode=mode,
            config={"choices": {k: v for k, v in run.choices.items() if v is not None}, **run.config},
            reinit="create_new",
            settings=wandb.Settings(console="off", silent=True, save_code=False),
        )
        state.update(run_id=run_id, mode=mode, dir=str(Path(self.wb.dir).parent))
        self.defined: set[str] = set()

    def _define(self, key: str, step: str) -> None:
        if key not in self.defined:
            if step not in self.defined:
                self.wb.define_metric(step)
                self.defined.add(step)
            self.wb.define_metric(key, step_metric=step)
            self.defined.add(key)

    def log_epoch(self, row: dict, steps: list[tuple[int, float]]) -> None:
        values = {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for key in values:
            if key != "epoch":
                self._define(key, "epoch")
        self.wb.log(values)
        if steps:
            self._define("train_step_loss", "examples_seen")
        for seen, loss in steps:
            self.wb.log({"examples_seen": seen, "train_step_loss": loss})

    def close(self, summary: dict) -> None:
        status = str(summary.get("status"))
        facts = {k: summary.get(k) for k in ("device", "seed", "versions")}
        self.wb.config.update(facts, allow_val_change=True)
        numbers = {
            k: summary[k] for k in ("best_test_acc", "best_epoch", "epochs_completed", "wall_seconds") if k in summary
        }
        self.wb.summary.update({"status": status, **facts, **numbers})
        self.wb.tags = tuple(t for t in (self.wb.tags or ()) if t not in STATUSES) + (status,)
        folder = self.run.folder
        files = self.wandb.Artifact(f"run-{self.wb.id}", type="run-files", metadata={"status": status})
        for path in (p for pattern in FILES for p in sorted(folder.glob(pattern))):
            files.add_file(str(path), name=str(path.relative_to(folder)).replace(f"{HYDRA_DIR}/", "hydra/"))
        self.wb.log_artifact(files)
        if self.log_model and (folder / MODEL).is_file():
            model = self.wandb.Artifact(f"model-{self.wb.id}", type="model", metadata={"status": status})
            model.add_file(str(folder / MODEL))
            self.wb.log_artifact(model)
        self.wb.finish(exit_code=0 if status == "completed" else 1)
        if self.state.get("mode") == "offline":
            console.say(f"W&B offline run: {self.state['dir']}; send it with: wandb sync {self.state['dir']}")
