"""Evaluate a trained run on a test split: `mnist-runner-eval RUN_FOLDER [dataset=NAME] [dataset.KEY=VALUE ...]`.

The run's stored config (`.hydra/config.yaml`) rebuilds its model, which gets the run's weights:
`model.pt`, or `checkpoints/last.pt` when the run did not finish. It is evaluated on the test split
of the run's own dataset (with its selections: classes, per_class), or of another one given as
`dataset=NAME` (e.g. `qmnist`, `npz dataset.path=FILE`); the run's `classes` and `binary_labels`
carry over to it unless given. The images are normalized as the run's were. Writes
`RUN_FOLDER/eval/<dataset>-<timestamp>/`: `eval.json` (loss, accuracy, per-class accuracy, dataset,
n), `confusion_matrix.csv` and `confusion_matrix.png`.

`load_trained` (also used by predict.py) turns a run folder into its model, loss and data facts.
"""

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from .hydra_errors import user_wants_traceback
from .registry import ConfigError, DataError
from .run_folder import BEST_MODEL, CHECKPOINT, EVAL, MODEL, DamagedRun, RunFolder


@dataclass
class TrainedRun:
    folder: Path
    cfg: object  # the run's stored config
    summary: dict
    model: object  # torch.nn.Module, in eval mode, on the CPU
    loss_fn: object
    weights: str  # which file the weights came from
    input_shape: tuple[int, int, int]
    class_names: list[str]
    mean: float  # the run's normalization: (x/255 - mean) / std
    std: float

    @property
    def dataset_choice(self) -> str:
        return str((self.summary.get("choices") or {}).get("dataset") or self.cfg.dataset.name)


def load_trained(folder, weights: str = "final") -> TrainedRun:
    """The run in `folder` with its weights loaded: `final` (model.pt, else the last checkpoint's) or `best`
    (model_best.pt, the best epoch on the monitored metric); ConfigError for a folder that is no run or has
    no such weights."""
    import torch

    from . import plugins
    from .losses import build_loss
    from .models import build_model

    folder = RunFolder(folder)
    folder.require_config()
    try:
        cfg = folder.config()
        summary = folder.summary() if folder.is_run else {}  # a run from before summary.json: its data says
    except DamagedRun as e:
        raise DataError(f"{folder.path}: {e}") from None
    plugins.load(cfg.get("plugins"))
    if weights == "best":
        weights = BEST_MODEL
        if not folder.file(BEST_MODEL).is_file():
            raise ConfigError(
                f"--weights best: {folder.path} has no {BEST_MODEL}: the run monitored no metric (trainer.monitor; "
                "auto monitors val_acc only with dataset.val_fraction); give --weights final"
            )
    else:
        weights = folder.weights()
    if weights is None:
        raise ConfigError(
            f"{folder.path} has no trained weights (no {MODEL}, no {CHECKPOINT}): the run did not complete an "
            f"epoch; give a run folder that did"
        )
    try:
        state = torch.load(folder.file(weights), map_location="cpu", weights_only=True)
    except Exception as e:
        raise DataError(f"{folder.file(weights)} cannot be read ({type(e).__name__}: {e})") from None
    if weights == CHECKPOINT:
        state = state["model"]
    facts = summary.get("data") or {}
    normalization = summary.get("normalization")
    if not facts or normalization is None:  # a run from before summary.json recorded them: its data says
        from .data import load_data

        data = load_data(cfg.dataset, torch.device("cpu"), seed=cfg.seed)
        facts = {"input_shape": list(data.input_shape), "classes": data.class_names}
        normalization = {"mean": data.mean, "std": data.std}
    input_shape, class_names = tuple(facts["input_shape"]), list(facts["classes"])
    model = build_model(cfg.model, input_shape, len(class_names))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise DataError(
            f"{folder.file(weights)} does not fit the model its config describes ({' '.join(str(e).split())[:300]})"
        ) from None
    model.eval()
    return TrainedRun(
        folder=folder.path,
        cfg=cfg,
        summary=summary,
        model=model,
        loss_fn=build_loss(cfg.loss),
        weights=weights,
        input_shape=input_shape,
        class_names=class_names,
        mean=float(normalization["mean"]),
        std=float(normalization["std"]),
    )


# --- the eval dataset ----------------------------------------------------------------------------


def eval_config(run: TrainedRun, overrides: list[str], config_dirs: list[str]):
    """(dataset config, its name for the output folder, device type) that `overrides` ask for."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as e:
        raise ConfigError(f"cannot parse the overrides {' '.join(overrides)}: {' '.join(str(e).split())}") from None
    dataset, keys, device = None, [], "auto"
    for o in parsed:
        key = o.key_or_group
        if key == "dataset":
            dataset = str(o.value())
        elif key.startswith("dataset."):
            keys.append(o)
        elif key in ("device", "device.type"):
            device = str(o.value())
        else:
            raise ConfigError(
                f"{o.input_line} is not allowed here; mnist-runner-eval takes dataset=NAME, dataset.KEY=VALUE and "
                f"device=TYPE"
            )
    if dataset is None:  # the run's own dataset, as it was configured
        cfg, name = OmegaConf.create(OmegaConf.to_container(run.cfg.dataset)), run.dataset_choice
        for o in keys:
            OmegaConf.update(cfg, o.key_or_group.split(".", 1)[1], o.value(), force_add=True)
        return cfg, name, device
    cfg = _compose_dataset(dataset, [o.input_line for o in keys], config_dirs)
    given = {o.key_or_group.split(".", 1)[1] for o in keys}
    for key in ("classes", "binary_labels", "root"):  # the run's selection carries over; where data lives too
        if key in cfg and key not in given and key in run.cfg.dataset:
            cfg[key] = run.cfg.dataset[key]
    return cfg, dataset, device


def _compose_dataset(name: str, overrides: list[str], config_dirs: list[str]):
    """The `dataset` group option `name` as Hydra composes it, with `dataset.KEY=VALUE` overrides."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from . import plugins
    from .config import config_dir, setup
    from .registry import DATASETS

    plugins.store_config_nodes([*config_dirs, config_dir()])
    setup()
    search = [f"hydra.searchpath=[{','.join('file://' + str(Path(d).resolve()) for d in config_dirs)}]"]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose("config", overrides=[f"dataset={name}", *overrides, *(search if config_dirs else [])])
    except Exception as e:
        text = " ".join(str(e).split())
        if f"dataset={name}" in text or "Could not find" in text:
            raise ConfigError(
                f"dataset={name} is not allowed; it must be one of: {', '.join(DATASETS.list())} "
                f"(or a dataset/*.yaml of --config-dir)"
            ) from None
        raise ConfigError(text) from None
    return cfg.dataset


# --- evaluating ----------------------------------------------------------------------------------


def evaluate_run(folder, overrides: list[str] = (), config_dirs: list[str] = (), weights: str = "final") -> Path:
    """Evaluate the run in `folder` (its `weights`: final or best) as `overrides` say; returns the folder the
    results went to."""

    from . import plots
    from .data import load_data
    from .devices import resolve_device
    from .files import write_atomic, write_json
    from .loops import evaluate, predict
    from .report import confusion_csv, confusion_matrix, per_class_accuracy
    from .validate import validate

    run = load_trained(folder, weights)
    dataset_cfg, name, device_type = eval_config(run, list(overrides), list(config_dirs))
    full = OmegaConf.create(OmegaConf.to_container(run.cfg))
    full.dataset, full.device = dataset_cfg, {"type": device_type}
    validate(full)
    device = resolve_device(device_type)
    data = load_data(full.dataset, device, seed=int(full.seed))
    trained = f"the run's model (model={run.cfg.model.name}, trained on {run.dataset_choice})"
    if tuple(data.input_shape) != run.input_shape:
        raise ConfigError(
            f"dataset={name} gives inputs of shape {tuple(data.input_shape)} but {trained} takes "
            f"{run.input_shape}; choose a dataset with that shape (image_folder: dataset.size, dataset.channels)"
        )
    if data.num_classes != len(run.class_names):
        raise ConfigError(
            f"dataset={name} has {data.num_classes} classes but {trained} has {len(run.class_names)}; "
            f"choose a dataset with {len(run.class_names)} classes (or select them with dataset.classes=[...])"
        )
    data.mean, data.std = run.mean, run.std  # the run's normalization, whatever this dataset's would be
    model, loss_fn = run.model.to(device), run.loss_fn.to(device)
    batch = int(run.cfg.trainer.eval_batch_size)
    loss, accuracy = evaluate(model, data, data.test, loss_fn, batch)
    predicted = predict(model, data, data.test, loss_fn, batch)
    matrix = confusion_matrix(data.test.labels.cpu(), predicted, data.num_classes)
    per_class = per_class_accuracy(matrix, data.class_names)
    out = _new_folder(RunFolder(folder).file(EVAL), f"{name}-{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    result = {
        "run": str(Path(folder).resolve()),
        "weights": run.weights,
        "dataset": name,
        "split": "test",
        "n": len(data.test),
        "loss": loss,
        "accuracy": accuracy,
        "per_class_accuracy": per_class,
        "dataset_config": OmegaConf.to_container(full.dataset, resolve=True),
        "device": str(device),
    }
    write_json(out / "eval.json", result)
    write_atomic(out / "confusion_matrix.csv", confusion_csv(matrix, data.class_names))
    plots.plot_confusion(
        matrix.numpy(), data.class_names, out / "confusion_matrix.png", f"{run.cfg.model.name} evaluated on {name}"
    )
    print(f"eval on {name} (test split, {len(data.test)} images): accuracy {accuracy:.4f}, loss {loss:.4f}")
    print(f"Output folder: {out.resolve()}", flush=True)
    return out


def _new_folder(parent: Path, name: str) -> Path:
    """parent/name, or name-1, name-2, ...: the first that did not exist."""
    parent.mkdir(parents=True, exist_ok=True)
    n = 0
    while True:
        path = parent / (name if n == 0 else f"{name}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mnist-runner-eval",
        description="Evaluate a trained run on the test split of its own dataset or another one; writes "
        "RUN_FOLDER/eval/<dataset>-<timestamp>/ (eval.json, confusion_matrix.csv, confusion_matrix.png).",
    )
    p.add_argument("folder", type=Path, metavar="RUN_FOLDER", help="a run folder the runner made")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="dataset=NAME (default: the run's own), dataset.KEY=VALUE, device=TYPE (default auto)",
    )
    p.add_argument(
        "--weights",
        choices=["final", "best"],
        default="final",
        help="final: the run's last weights (model.pt, else its last checkpoint's; the default); best: "
        "model_best.pt, the best epoch on the run's monitored metric (trainer.monitor)",
    )
    p.add_argument(
        "--config-dir", action="append", default=[], metavar="DIR", help="also look for dataset/NAME.yaml in DIR"
    )
    return p


def main(argv: list[str] | None = None) -> int:

    args = parser().parse_args(argv)
    try:
        evaluate_run(args.folder, args.overrides, args.config_dir, args.weights)
    except (ConfigError, DataError) as e:
        if user_wants_traceback():
            raise
        print(f"Error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
