"""The networks of the classic MNIST results, as their papers describe them (docs/reproducing.md):

- `lenet5_1998`: LeCun, Bottou, Bengio & Haffner (1998), "Gradient-based learning applied to document
  recognition", section II: 32x32 input (the 28x28 digit padded with its background), C1 6@28x28 (5x5),
  S2 (each map's 2x2 sums times a trainable coefficient plus a trainable bias, then the squashing
  function), C3 16@10x10 with the sparse table, S4 likewise, C5 120 (5x5), F6 84, and the squashing
  function f(a) = 1.7159 tanh(2a/3) everywhere; weights uniform in +-2.4 / fan-in. Its output layer
  here is a linear one read by the cross-entropy, not the paper's Euclidean RBF units with fixed
  bitmaps (which its MAP/MSE criterion needs).
- `simard2003_cnn`: Simard, Steinkraus & Platt (2003), "Best practices for convolutional neural
  networks applied to visual document analysis", section 4: 29x29 input, 5 maps 5x5 stride 2 (13x13),
  50 maps 5x5 stride 2 (5x5), 100 hidden units, 10 outputs, no pooling: subsampling by the
  convolutions' stride.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from . import MODELS, require_input
from .lenet import C3_TABLE, SparseConv2d


class ScaledTanh(nn.Module):
    """LeCun's squashing function f(a) = A tanh(S a), A = 1.7159, S = 2/3: f(1) = 1, f(-1) = -1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


class Pad(nn.Module):
    """Pads the image by repeating its outermost pixels: its own background, whatever the normalization."""

    def __init__(self, left: int, right: int, top: int, bottom: int):
        super().__init__()
        self.padding = (left, right, top, bottom)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.padding, mode="replicate")


class Subsample(nn.Module):
    """LeNet-5's S layers: per map, the sum of each 2x2 block times a trainable coefficient, plus a bias."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels))
        self.bias = nn.Parameter(torch.empty(channels))
        fan_in = 4
        nn.init.uniform_(self.weight, -2.4 / fan_in, 2.4 / fan_in)
        nn.init.uniform_(self.bias, -2.4 / fan_in, 2.4 / fan_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        summed = F.avg_pool2d(x, 2) * 4
        return summed * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def lecun_init(module: nn.Module) -> None:
    """Weights and biases uniform in +-2.4 / fan-in (the paper's section III.A), for every conv and linear layer."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            bound = 2.4 / math.prod(layer.weight.shape[1:])
            nn.init.uniform_(layer.weight, -bound, bound)
            nn.init.uniform_(layer.bias, -bound, bound)
        elif isinstance(layer, SparseConv2d):
            for o, inputs in enumerate(C3_TABLE):  # fan-in: the maps each C3 map reads, times 5x5
                bound = 2.4 / (len(inputs) * 25)
                rows = [n for n, i in enumerate(layer.pair_index.tolist()) if i // layer.in_channels == o]
                nn.init.uniform_(layer.weight[rows], -bound, bound)
                nn.init.uniform_(layer.bias[o : o + 1], -bound, bound)


@MODELS.register
def lenet5_1998(input_shape, num_classes):
    require_input("lenet5_1998", input_shape, (1, 28, 28))
    model = nn.Sequential(
        Pad(2, 2, 2, 2),  # 1@32x32
        nn.Conv2d(1, 6, 5), ScaledTanh(),  # C1: 6@28x28
        Subsample(6), ScaledTanh(),  # S2: 6@14x14
        SparseConv2d(6, C3_TABLE, 5), ScaledTanh(),  # C3: 16@10x10, 60 of the 96 map pairs
        Subsample(16), ScaledTanh(),  # S4: 16@5x5
        nn.Conv2d(16, 120, 5), ScaledTanh(),  # C5: 120@1x1
        nn.Flatten(),
        nn.Linear(120, 84), ScaledTanh(),  # F6
        nn.Linear(84, num_classes),  # the scores (the paper: RBF units)
    )  # fmt: skip
    with torch.no_grad():
        lecun_init(model)
    return model


@MODELS.register
def simard2003_cnn(input_shape, num_classes):
    require_input("simard2003_cnn", input_shape, (1, 28, 28))
    return nn.Sequential(
        Pad(0, 1, 0, 1),  # 1@29x29
        nn.Conv2d(1, 5, 5, stride=2), ScaledTanh(),  # 5@13x13
        nn.Conv2d(5, 50, 5, stride=2), ScaledTanh(),  # 50@5x5
        nn.Flatten(),
        nn.Linear(50 * 5 * 5, 100), ScaledTanh(),
        nn.Linear(100, num_classes),
    )  # fmt: skip
