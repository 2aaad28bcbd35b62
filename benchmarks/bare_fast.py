#!/usr/bin/env python
"""The mnist_fast recipe as a bare PyTorch loop: what benchmark.py's `fast` section times the runner against.

    python benchmarks/bare_fast.py --seed 0 --data-root ../shared/data            # prints the test accuracy

The same arithmetic as `python -m mnist_runner experiment=mnist_fast seed=0` (conf/experiment/mnist_fast.yaml),
without the runner: the IDX files read into memory as uint8, the same CNN built after torch.manual_seed(seed),
one torch.randperm per epoch from its own generator, batches gathered and normalized as the runner does,
Adam and the one-cycle schedule stepped every step, bf16 autocast of the forward passes, channels-last
weights, then one pass over the test split. No checkpoints, metrics files, plots or config: the floor a
runner can be measured against. Its accuracy equals the runner's for the same seed and threads.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

MEAN, STD = 0.1307, 0.3081


def read_idx(path: Path, header: int) -> torch.Tensor:
    return torch.from_numpy(np.fromfile(path, dtype=np.uint8, offset=header))


def mnist(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    raw = root / "MNIST" / "raw"
    images = read_idx(raw / f"{split}-images-idx3-ubyte", 16).view(-1, 1, 28, 28)
    return images, read_idx(raw / f"{split}-labels-idx1-ubyte", 8).long()


def model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 5, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Flatten(), nn.Linear(400, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip


def forward(net: nn.Module, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    if not bf16:
        return net(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return net(x).float()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: PyTorch's)")
    p.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bf16 = not args.fp32
    (x_train, y_train), (x_test, y_test) = mnist(args.data_root, "train"), mnist(args.data_root, "t10k")
    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    net = model().to(memory_format=torch.channels_last)
    order = torch.Generator().manual_seed(args.seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01, betas=(0.95, 0.9))
    steps = -(-len(y_train) // 128)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=0.01, total_steps=steps, pct_start=0.25, div_factor=25.0, final_div_factor=1e4
    )
    net.train()
    index = torch.randperm(len(y_train), generator=order)
    for start in range(0, len(y_train), 128):
        batch = index[start : start + 128]
        x = x_train.index_select(0, batch).float().mul_(1 / (255 * STD)).sub_(MEAN / STD)
        loss = F.cross_entropy(forward(net, x, bf16), y_train.index_select(0, batch), label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        loss.item()  # as the runner reads every step's loss on the CPU
    net.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(y_test), 1000):
            x = x_test[start : start + 1000].float().mul_(1 / (255 * STD)).sub_(MEAN / STD)
            correct += (forward(net, x, bf16).argmax(1) == y_test[start : start + 1000]).sum().item()
    print(
        f"seed {args.seed}: test accuracy {correct / len(y_test):.4f} in {time.perf_counter() - t0:.2f} s", flush=True
    )


if __name__ == "__main__":
    main()
