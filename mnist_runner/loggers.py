"""Experiment loggers (`logger=...`): where a run's numbers go besides its own folder.

`none` writes nothing more; `tensorboard` writes scalars per epoch and the run's hyperparameters
with its final metrics (TensorBoard's HPARAMS tab) into `RUN_FOLDER/tensorboard/`.
"""

from pathlib import Path

from .registry import LOGGERS, ConfigError


class Logger:
    """Does nothing: the `none` logger, and the interface the others fill in."""

    def log_epoch(self, row: dict) -> None:
        pass

    def close(self, hparams: dict, summary: dict) -> None:
        pass


LOGGERS.register("none")(lambda out, **options: Logger())


@LOGGERS.register("tensorboard")
class TensorBoardLogger(Logger):
    def __init__(self, out: Path, subdir: str = "tensorboard"):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ConfigError(
                f"logger=tensorboard needs the tensorboard package ({e}); "
                "install it with: pip install 'mnist-runner[tensorboard]'"
            ) from None
        self.writer = SummaryWriter(log_dir=str(Path(out) / subdir))

    def log_epoch(self, row: dict) -> None:
        epoch = row["epoch"]
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)):
                split, _, name = key.partition("_")
                tag = f"{name}/{split}" if split in ("train", "test", "val") else key
                self.writer.add_scalar(tag, value, epoch)
        self.writer.flush()

    def close(self, hparams: dict, summary: dict) -> None:
        final = summary.get("final") or {}
        metrics = {f"hparam/final_{k}": v for k, v in final.items()}
        if "best_test_acc" in summary:
            metrics["hparam/best_test_acc"] = summary["best_test_acc"]
        if metrics:
            clean = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in hparams.items()}
            self.writer.add_hparams(clean, metrics, run_name=".")
        self.writer.close()


def build_logger(cfg, out: Path) -> Logger:
    if cfg is None:
        return Logger()
    return LOGGERS.build(cfg, out)
