"""`logger=tensorboard`: TensorBoard event files in RUN_FOLDER/tensorboard/ (extra `tensorboard`).

Scalars per epoch (`acc/test`, `loss/train`, ..., `lr`), the logged training losses against the
examples seen (`loss/train_steps`), and at the end the run's choices and overrides with its final
metrics (the HPARAMS tab).
"""

from . import Logger, RunInfo, needs


class TensorBoardLogger(Logger):
    def __init__(self, run: RunInfo, state: dict, subdir: str = "tensorboard"):
        super().__init__(run, state)
        needs("tensorboard", "tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run.folder / subdir))

    def log_epoch(self, row: dict, steps: list[tuple[int, float]]) -> None:
        epoch = row["epoch"]
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)):
                split, _, name = key.partition("_")
                tag = f"{name}/{split}" if split in ("train", "test", "val") else key
                self.writer.add_scalar(tag, value, epoch)
        for examples_seen, loss in steps:
            self.writer.add_scalar("loss/train_steps", loss, examples_seen)
        self.writer.flush()

    def close(self, summary: dict) -> None:
        final = summary.get("final") or {}
        metrics = {f"hparam/final_{k}": v for k, v in final.items()}
        if "best_test_acc" in summary:
            metrics["hparam/best_test_acc"] = summary["best_test_acc"]
        if metrics:
            hparams = self.run.hparams()
            clean = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in hparams.items()}
            self.writer.add_hparams(clean, metrics, run_name=".")
        self.writer.close()
