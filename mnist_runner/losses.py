"""Loss registry: `name -> builder(**options) -> Objective`.

An objective scores a batch of logits against class-index labels and says which class it
predicts, so accuracy and the confusion matrix follow the same rule as the loss.
"""

import torch
from torch import nn
from torch.nn import functional as F

from .registry import Registry

LOSSES: Registry = Registry("loss")


class Objective(nn.Module):
    binary = False  # True: one-output model, labels seen as -1/+1

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=1)


def build_loss(cfg) -> Objective:
    options = {k: v for k, v in cfg.items() if k != "name"}
    return LOSSES.get(cfg.name)(**options)


class CrossEntropy(Objective):
    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits, labels):
        return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)


LOSSES.register("cross_entropy")(CrossEntropy)
