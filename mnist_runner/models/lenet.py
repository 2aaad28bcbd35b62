"""LeNet-5 as in the seed notebooks (000, 001): tanh everywhere, average pooling followed by tanh.

`lenet_subset` keeps LeCun's original sparse C3 connection table: 60 of the 96 (output, input)
channel pairs are connected, so C3 has 60 * 25 = 1,500 weights and 16 biases. The seeds ran 16
separate convolutions (3.7x slower than the full model); here only the connected kernels are
parameters, and each forward scatters them into one dense (16, 6, 5, 5) kernel for a single
convolution, so the gradient reaches only the stored weights and the cost is the full model's.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from . import MODELS, require_input

# The seeds' table: which of the 6 input maps each of the 16 C3 maps reads.
C3_TABLE = [
    [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [0, 4, 5], [0, 1, 5],
    [0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [0, 3, 4, 5], [0, 1, 4, 5],
    [0, 1, 2, 5], [0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5],
    [0, 1, 2, 3, 4, 5],
]  # fmt: skip


class SparseConv2d(nn.Module):
    """A convolution whose output channel `o` reads only the input channels `table[o]`."""

    def __init__(self, in_channels: int, table: list[list[int]], kernel_size: int):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, len(table), kernel_size
        pairs = [(o, i) for o, inputs in enumerate(table) for i in inputs]
        self.register_buffer("pair_index", torch.tensor([o * in_channels + i for o, i in pairs]), persistent=False)
        self.weight = nn.Parameter(torch.empty(len(pairs), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(len(table)))
        # Same init as the seeds' separate nn.Conv2d(len(inputs), 1, k): U(+-1/sqrt(fan_in)).
        with torch.no_grad():
            for o, inputs in enumerate(table):
                bound = 1.0 / math.sqrt(len(inputs) * kernel_size**2)
                rows = [n for n, (po, _) in enumerate(pairs) if po == o]
                self.weight[rows] = torch.empty(len(rows), kernel_size, kernel_size).uniform_(-bound, bound)
                self.bias[o].uniform_(-bound, bound)

    def dense_weight(self) -> torch.Tensor:
        k = self.kernel_size
        flat = self.weight.new_zeros(self.out_channels * self.in_channels, k * k)
        flat = flat.index_copy(0, self.pair_index, self.weight.view(-1, k * k))
        return flat.view(self.out_channels, self.in_channels, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, connections={len(self.weight)}"
        )


class LeNet5(nn.Module):
    def __init__(self, c3: nn.Module, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Tanh(),  # C1: 6@28x28
            nn.AvgPool2d(2), nn.Tanh(),  # S2: 6@14x14
            c3, nn.Tanh(),  # C3: 16@10x10
            nn.AvgPool2d(2), nn.Tanh(),  # S4: 16@5x5
        )  # fmt: skip
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), nn.Tanh(),  # C5
            nn.Linear(120, 84), nn.Tanh(),  # F6
            nn.Linear(84, num_classes),  # output scores
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@MODELS.register
def lenet_full(input_shape, num_classes):
    require_input("lenet_full", input_shape, (1, 28, 28))
    return LeNet5(nn.Conv2d(6, 16, kernel_size=5), num_classes)


@MODELS.register
def lenet_subset(input_shape, num_classes):
    require_input("lenet_subset", input_shape, (1, 28, 28))
    return LeNet5(SparseConv2d(6, C3_TABLE, kernel_size=5), num_classes)
