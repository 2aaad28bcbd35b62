"""The training and evaluation loops.

Metrics are accumulated as tensors on the device and read once per epoch, so a GPU step never
waits on the host; the training loss is read only every `log_interval` steps (every step on the
CPU, where reading it costs nothing, so a NaN or infinite loss stops training at once). On CUDA
even those reads do not wait: see `HostReader`.
"""

import math
from collections import deque
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from .data import Data, Split


@dataclass
class EpochStats:
    loss: float
    acc: float
    steps: list[tuple[int, float]] = field(default_factory=list)  # (step, loss) at log intervals


class Diverged(RuntimeError):
    """The training loss became NaN or infinite; `step` counts from the start of the run."""

    def __init__(self, step: int, loss: float, what: str = "training loss"):
        super().__init__(f"{what} became {loss} at step {step}")
        self.step, self.loss, self.epoch = step, loss, None


class HostReader:
    """Scalars read on the host without stalling an accelerator.

    On CUDA each pushed scalar is copied into pinned host memory behind its step's kernels, and is
    read at a later check once the GPU has got there (an event says so), so the step loop never
    waits and a NaN is still caught within one check of the GPU reaching it. Elsewhere it is read
    at once (on the CPU that costs nothing).
    """

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.pending: deque = deque()  # (step, tensor, event or None), oldest first

    def push(self, step: int, value: torch.Tensor) -> None:
        value, event = value.detach(), None
        if self.cuda:
            host = torch.empty((), dtype=value.dtype, pin_memory=True)
            value = host.copy_(value, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
        self.pending.append((step, value, event))

    def ready(self, wait: bool = False):
        """Yield (step, value) of each pushed scalar the device has produced, oldest first; all with `wait`."""
        while self.pending:
            step, value, event = self.pending[0]
            if event is not None and not event.query():
                if not wait:
                    return
                event.synchronize()
            self.pending.popleft()
            yield step, value.item()


def train_one_epoch(
    model,
    data: Data,
    loss_fn,
    optimizer,
    *,
    batch_size: int,
    generator: torch.Generator,
    log_interval: int,
    first_step: int = 0,
    progress: bool = False,
    description: str = "",
    augment=None,
) -> EpochStats:
    model.train()
    device = data.train.labels.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    logged: list[tuple[int, float]] = []
    total_steps = data.steps_per_epoch(batch_size)
    bar = tqdm(total=total_steps, desc=description, disable=not progress, leave=False, unit="step")
    step = first_step
    check_every = 1 if device.type == "cpu" else log_interval
    reader = HostReader(device)

    def check(at: int, value: float) -> None:
        if not math.isfinite(value):
            bar.close()
            raise Diverged(at, value)
        if at % log_interval == 0:
            logged.append((at, value))
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)

    for inputs, labels in data.batches(data.train, batch_size, generator, augment):
        logits = model(inputs)
        loss = loss_fn(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        with torch.no_grad():
            loss_sum += loss.detach() * len(labels)
            correct += loss_fn.correct(logits, labels).sum()
        if step % check_every == 0:
            reader.push(step, loss)
            for at, value in reader.ready():
                check(at, value)
        bar.update()
    for at, value in reader.ready(wait=True):
        check(at, value)
    bar.close()
    mean_loss = (loss_sum / len(data.train)).item()
    if not math.isfinite(mean_loss):
        raise Diverged(step, mean_loss)
    return EpochStats(mean_loss, correct.item() / len(data.train), logged)


@torch.inference_mode()
def evaluate(model, data: Data, split: Split, loss_fn, batch_size: int) -> tuple[float, float]:
    """Mean loss and accuracy over a whole split, in large batches."""
    model.eval()
    device = split.labels.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    for inputs, labels in data.batches(split, batch_size):
        logits = model(inputs)
        loss_sum += loss_fn(logits, labels) * len(labels)
        correct += loss_fn.correct(logits, labels).sum()
    return (loss_sum / len(split)).item(), correct.item() / len(split)


@torch.inference_mode()
def predict(model, data: Data, split: Split, loss_fn, batch_size: int) -> torch.Tensor:
    """Predicted class of every example of a split, on the CPU."""
    model.eval()
    chunks = [loss_fn.predict(model(x)) for x, _ in data.batches(split, batch_size)]
    return torch.cat(chunks).cpu()
