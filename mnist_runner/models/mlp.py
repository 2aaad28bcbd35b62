"""Multi-layer perceptrons: Flatten, then per hidden layer Linear [-> BatchNorm] -> activation
[-> Dropout], then a Linear to the class scores.

Presets: `mlp_128` (784-128-10, seed 004), `mlp_bn3` and `mlp_bn4` (seed 002: batch norm on every
hidden layer after the first).
"""

import math

from torch import nn

from ..registry import ConfigError
from . import MODELS

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}
BATCH_NORM_MODES = ("none", "all", "after_first")


def batch_norm_flags(batch_norm, layers: int) -> list[bool]:
    """`none`, `all`, `after_first` (seed 002) or a list of booleans, one per hidden layer."""
    if isinstance(batch_norm, str):
        if batch_norm not in BATCH_NORM_MODES:
            raise ConfigError(
                f"model.batch_norm={batch_norm!r} is not allowed; choose one of: "
                f"{', '.join(BATCH_NORM_MODES)}, or a list of {layers} booleans"
            )
        return [batch_norm == "all" or (batch_norm == "after_first" and i > 0) for i in range(layers)]
    flags = list(batch_norm)
    if len(flags) != layers or not all(isinstance(f, bool) for f in flags):
        raise ConfigError(
            f"model.batch_norm={flags} must be one boolean per hidden layer ({layers}), "
            f"or one of: {', '.join(BATCH_NORM_MODES)}"
        )
    return flags


@MODELS.register
def mlp(input_shape, num_classes, hidden=(128,), activation="relu", batch_norm="none", dropout=0.0):
    hidden = [int(h) for h in hidden]
    if not hidden or min(hidden) < 1:
        raise ConfigError(f"model.hidden={hidden} must be a non-empty list of layer widths >= 1")
    if activation not in ACTIVATIONS:
        raise ConfigError(f"model.activation={activation!r} is not allowed; choose one of: {', '.join(ACTIVATIONS)}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ConfigError(f"model.dropout={dropout} must be in [0, 1)")
    norms = batch_norm_flags(batch_norm, len(hidden))
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for h, norm in zip(hidden, norms):
        layers.append(nn.Linear(width, h))
        if norm:
            layers.append(nn.BatchNorm1d(h))
        layers.append(ACTIVATIONS[activation]())
        if dropout:
            layers.append(nn.Dropout(float(dropout)))
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)
