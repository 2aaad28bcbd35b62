"""Loss registry: `name -> builder(**options) -> Objective`.

An objective scores a batch of logits against class-index labels and says which class it
predicts and which predictions are correct, so accuracy follows the same rule as the loss.

Labels stay class indices in the data. A binary objective (one-output model, two classes with
`dataset.binary_labels=pm1`) reads index 0 as y = -1 and index 1 as y = +1, as seeds 000/001 did,
and counts z * y >= 0 as correct, as they did.
"""

import torch
from torch import nn
from torch.nn import functional as F

from .registry import LOSSES, ConfigError
from .rules import UNIT_HALF_OPEN


class Objective(nn.Module):
    binary = False  # True: one-output model, labels seen as -1/+1

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=1)

    def correct(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """A boolean per example."""
        return self.predict(logits) == labels


class BinaryObjective(Objective):
    """One score z per example; class index 0 is y = -1, index 1 is y = +1."""

    binary = True

    @staticmethod
    def scores_and_signs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return logits.reshape(-1), labels.to(logits.dtype) * 2 - 1

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        return (logits.reshape(-1) >= 0).long()

    def correct(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z, y = self.scores_and_signs(logits, labels)
        return z * y >= 0

    def forward(self, logits, labels):
        return self.loss(*self.scores_and_signs(logits, labels))


def build_loss(cfg) -> Objective:
    return as_objective(LOSSES.build(cfg))


class LossFunction(Objective):
    """A plugin's plain loss, `loss(logits, labels)` (e.g. `nn.CrossEntropyLoss()`), predicting the arg-max class."""

    def __init__(self, loss):
        super().__init__()
        self.loss = loss

    def forward(self, logits, labels):
        return self.loss(logits, labels)


def as_objective(loss) -> Objective:
    """`loss` itself when it is an Objective, else wrapped in one."""
    return loss if isinstance(loss, Objective) else LossFunction(loss)


def check_fit(objective: Objective, names: dict, model: nn.Module, data) -> None:
    """Fail before training when loss, dataset and model do not fit together.

    `names` holds the chosen `loss`, `dataset` and `model` (for the message); the model's number
    of outputs is read from one forward pass in evaluation mode.
    """
    was_training = model.training
    with torch.no_grad():
        outputs = model.eval()(data.prepare(data.train.images[:1])).shape[-1]
    model.train(was_training)
    num_classes, binary_labels = data.num_classes, data.binary_labels
    loss, dataset, model = names["loss"], names["dataset"], names["model"]
    got = (
        f"got dataset={dataset} ({num_classes} classes, binary_labels={binary_labels}) and "
        f"model={model} ({outputs} output{'s' if outputs != 1 else ''})"
    )
    if objective.binary:
        if num_classes != 2 or binary_labels != "pm1" or outputs != 1:
            raise ConfigError(
                f"loss={loss} is a binary loss: it needs a two-class dataset with binary_labels=pm1 "
                f"(e.g. dataset=mnist_4v9) and a one-output model (e.g. model=logistic); {got}"
            )
    elif outputs != num_classes:
        raise ConfigError(f"loss={loss} needs a model with one output per class ({num_classes}); {got}")


class CrossEntropy(Objective):
    """Mean of -log softmax(z)[y]: the seeds' log_softmax + nll_loss."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits, labels):
        return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)


LOSSES.register("cross_entropy", rules={"label_smoothing": UNIT_HALF_OPEN})(CrossEntropy)


class MSE(Objective):
    """Squared distance between softmax(z) and the one-hot target, summed over the classes and
    averaged over the batch (for two classes it equals sum_of_squares)."""

    def forward(self, logits, labels):
        target = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
        return (logits.softmax(dim=1) - target).square().sum(dim=1).mean()


LOSSES.register("mse")(MSE)


def logistic_loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """mean log(1 + exp(-y z)) for y in {-1, +1}, computed stably (seed 000)."""
    return F.softplus(-y * z).mean()


def sum_of_squares_loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Seed 000's loss: the squared distance between the one-hot target and the two-class
    probabilities (sigmoid(-z), sigmoid(z)), y in {-1, +1}; z and y broadcast as in the seed."""
    z = z.float()
    p_neg, p_pos = torch.sigmoid(-z), torch.sigmoid(z)
    to_neg = (1 - p_neg).square() + p_pos.square()  # target (1, 0): y = -1
    to_pos = p_neg.square() + (1 - p_pos).square()  # target (0, 1): y = +1
    return (0.5 * (1 - y) * to_neg + 0.5 * (1 + y) * to_pos).mean()


class Logistic(BinaryObjective):
    loss = staticmethod(logistic_loss)


class SumOfSquares(BinaryObjective):
    loss = staticmethod(sum_of_squares_loss)


LOSSES.register("logistic")(Logistic)
LOSSES.register("sum_of_squares")(SumOfSquares)
