"""Multi-layer perceptrons: Flatten, then per hidden layer Linear [-> BatchNorm] -> activation
[-> Dropout], then a Linear to the class scores.

Presets: `mlp_128` (784-128-10, seed 004), `mlp_bn3` and `mlp_bn4` (seed 002: batch norm on every
hidden layer after the first).
"""

import math

from torch import nn

from ..registry import ConfigError
from ..rules import UNIT_HALF_OPEN, Rule, one_of, show
from . import MODELS
from .classic import ScaledTanh

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "scaled_tanh": ScaledTanh}  # scaled: LeCun's 1.7159 tanh(2x/3)
BATCH_NORM_MODES = ("none", "all", "after_first")
RULES = {
    "hidden": Rule(
        lambda v: (
            isinstance(v, list)
            and len(v) > 0
            and all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in v)
        ),
        "a non-empty list of layer widths >= 1, e.g. [256,128]",
    ),
    "activation": one_of(*ACTIVATIONS),
    "batch_norm": Rule(
        lambda v: v in BATCH_NORM_MODES or (isinstance(v, list) and all(isinstance(f, bool) for f in v)),
        f"one of: {', '.join(BATCH_NORM_MODES)}, or a list of booleans, one per hidden layer",
    ),
    "dropout": UNIT_HALF_OPEN,
}


def batch_norm_flags(batch_norm, layers: int) -> list[bool]:
    """`none`, `all`, `after_first` (seed 002) or a list of booleans, one per hidden layer."""
    if isinstance(batch_norm, str):
        return [batch_norm == "all" or (batch_norm == "after_first" and i > 0) for i in range(layers)]
    return list(batch_norm)


def _one_flag_per_layer(options: dict) -> None:
    batch_norm, hidden = options.get("batch_norm"), options.get("hidden")
    if isinstance(batch_norm, list) and isinstance(hidden, list) and len(batch_norm) != len(hidden):
        raise ConfigError(
            f"model.batch_norm={show(batch_norm)} is not allowed with model.hidden={show(hidden)}: it needs one "
            f"boolean per hidden layer ({len(hidden)}), or one of: {', '.join(BATCH_NORM_MODES)}"
        )


@MODELS.register(rules=RULES, check=_one_flag_per_layer)
def mlp(input_shape, num_classes, hidden=(128,), activation="relu", batch_norm="none", dropout=0.0):
    hidden = [int(h) for h in hidden]
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
