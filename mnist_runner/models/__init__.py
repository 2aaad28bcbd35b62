"""Model registry: `name -> builder(input_shape, num_classes, **options) -> nn.Module`.

Every model returns raw scores (logits); losses apply softmax/sigmoid themselves.
"""

import torch
from torch import nn

from ..registry import MODELS, ConfigError


def build_model(cfg, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Build the model a `model` config group entry names, with its other keys as options."""
    return MODELS.build(cfg, input_shape=tuple(input_shape), num_classes=num_classes)


def require_input(name: str, input_shape, expected) -> None:
    if tuple(input_shape) != tuple(expected):
        raise ConfigError(
            f"model={name} takes inputs of shape {tuple(expected)} but the dataset gives "
            f"{tuple(input_shape)}; choose a model that fits the dataset"
        )


def flat_features(name: str, layers: list[nn.Module], input_shape) -> int:
    """Features per example after `layers` (convolutions, pooling) on inputs of `input_shape`.

    Raises ConfigError when the inputs are too small for them. Draws no random numbers.
    """
    features = nn.Sequential(*layers).eval()  # batch norm: no running statistics from this probe
    try:
        with torch.no_grad():
            out = features(torch.zeros(1, *input_shape))
    except RuntimeError:
        out = None
    features.train()
    if out is None or out.numel() == 0:
        raise ConfigError(
            f"model={name} cannot take inputs of shape {tuple(input_shape)}: they are too small for its "
            f"convolutions and pooling (1x28x28 fits); choose a model that fits the dataset"
        )
    return out[0].numel()


def count_parameters(model: nn.Module) -> dict[str, int]:
    return {
        "total": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


# Importing the modules registers their models.
from . import classic, cnn, lenet, linear, mlp, vgg  # noqa: E402,F401
