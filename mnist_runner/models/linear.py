"""Linear models: `logistic` (one score, for the binary problems of seeds 000/001) and `softmax`
(multinomial logistic regression, one score per class). Both flatten any input."""

import math

from torch import nn

from . import MODELS


@MODELS.register
def logistic(input_shape, num_classes):
    """784 -> 1 with bias: z = w.x + b; a binary loss reads the sign of z (seeds 000/001)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 1))


@MODELS.register
def softmax(input_shape, num_classes):
    """784 -> C: the scores of multinomial logistic regression (cross_entropy applies the softmax)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))
