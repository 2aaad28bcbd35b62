"""The monitored metric: which epoch is the best (its weights go to model_best.pt) and when to stop early.

`trainer.monitor` names the metric: `auto` (the default) is `val_acc` when the run holds out a
validation split (`dataset.val_fraction`) and nothing otherwise, so choosing an epoch never looks at
the test set unless the user asks for it with `test_acc` or `test_loss` (summary.json then says the
choice used the test set). Accuracies are better higher, losses lower. An epoch improves when it beats
the best so far by more than `trainer.early_stopping.min_delta` (0: any improvement); with
`trainer.early_stopping.patience=N` the run stops, completed, after N epochs without one.

Everything here is computed from the epochs' rows (metrics.csv's), which a checkpoint keeps, so a
resumed run picks up the best epoch and the patience count where they were.
"""

from dataclasses import dataclass

from .registry import ConfigError

METRICS = ("val_acc", "val_loss", "test_acc", "test_loss")
CHOICES = ("auto", "none", *METRICS)


@dataclass(frozen=True)
class Monitor:
    metric: str | None  # one of METRICS, or None: no best epoch is chosen
    patience: int | None = None  # early stopping after this many epochs without an improvement; None: never
    min_delta: float = 0.0

    @classmethod
    def of(cls, trainer, has_val: bool) -> "Monitor":
        """The run's monitor from its `trainer` config; ConfigError (one line) for one it cannot have."""
        chosen = trainer.get("monitor", "auto")
        metric = ("val_acc" if has_val else None) if chosen == "auto" else (None if chosen == "none" else chosen)
        if metric is not None and metric.startswith("val_") and not has_val:
            raise ConfigError(
                f"trainer.monitor={metric} needs a validation split, and this run has none: set "
                "dataset.val_fraction (e.g. 0.1), or trainer.monitor=test_acc to choose the epoch on the test set"
            )
        stopping = trainer.get("early_stopping") or {}
        patience, min_delta = stopping.get("patience"), float(stopping.get("min_delta") or 0.0)
        if patience is not None and metric is None:
            raise ConfigError(
                f"trainer.early_stopping.patience={patience} needs a monitored metric, and this run has none "
                f"(trainer.monitor={chosen}): set dataset.val_fraction (e.g. 0.1) to monitor val_acc, or "
                "trainer.monitor=test_acc"
            )
        return cls(metric, patience, min_delta)

    @property
    def uses_test_set(self) -> bool:
        return self.metric is not None and self.metric.startswith("test_")

    def _gain(self, value: float, best: float) -> float:
        return value - best if self.metric.endswith("_acc") else best - value

    def improving(self, rows: list[dict]) -> list[dict]:
        """The rows that improved on every row before them (by more than min_delta), in order."""
        kept: list[dict] = []
        for row in rows:
            if not kept or self._gain(row[self.metric], kept[-1][self.metric]) > self.min_delta:
                kept.append(row)
        return kept

    def best(self, rows: list[dict]) -> dict | None:
        """The best row so far: the last that improved (its weights are model_best.pt's); None unmonitored."""
        return self.improving(rows)[-1] if self.metric and rows else None

    def stop(self, rows: list[dict]) -> str | None:
        """Why the run stops after the last of `rows`, or None while it goes on."""
        if self.patience is None or not rows:
            return None
        best = self.best(rows)
        waited = rows[-1]["epoch"] - best["epoch"]
        if waited < self.patience:
            return None
        delta = f" by more than {self.min_delta:g}" if self.min_delta else ""
        return (
            f"{self.metric} did not improve{delta} for {waited} epochs (trainer.early_stopping.patience="
            f"{self.patience}); the best was {best[self.metric]:.6g} in epoch {best['epoch']}"
        )

    def record(self, rows: list[dict]) -> dict:
        """summary.json's `best_checkpoint` for these rows ({} when nothing is monitored)."""
        best = self.best(rows)
        if best is None:
            return {}
        return {
            "best_checkpoint": {
                "metric": self.metric,
                "epoch": best["epoch"],
                "value": best[self.metric],
                "chosen_on": "the test set" if self.uses_test_set else "the validation split",
            }
        }
