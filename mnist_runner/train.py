"""The training and evaluation loops.

Metrics are accumulated as tensors on the device and read once per epoch, so a GPU step never
waits on the host; the training loss is read only every `log_interval` steps.
"""

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
    def __init__(self, step: int, loss: float):
        super().__init__(f"loss became {loss} at step {step}")
        self.step, self.loss = step, loss


def train_one_epoch(
    model, data: Data, loss_fn, optimizer, *, batch_size: int, generator: torch.Generator,
    log_interval: int, first_step: int = 0, progress: bool = False, description: str = "",
) -> EpochStats:  # fmt: skip
    model.train()
    device = data.train.labels.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    logged: list[tuple[int, torch.Tensor]] = []
    total_steps = -(-len(data.train) // batch_size)
    bar = tqdm(total=total_steps, desc=description, disable=not progress, leave=False, unit="step")
    step = first_step
    for inputs, labels in data.batches(data.train, batch_size, generator):
        logits = model(inputs)
        loss = loss_fn(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        with torch.no_grad():
            loss_sum += loss.detach() * len(labels)
            correct += (loss_fn.predict(logits) == labels).sum()
        if step % log_interval == 0:
            value = loss.item()
            if not torch.isfinite(torch.tensor(value)):
                bar.close()
                raise Diverged(step, value)
            logged.append((step, value))
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)
        bar.update()
    bar.close()
    mean_loss = (loss_sum / len(data.train)).item()
    if not torch.isfinite(torch.tensor(mean_loss)):
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
        correct += (loss_fn.predict(logits) == labels).sum()
    return (loss_sum / len(split)).item(), correct.item() / len(split)


@torch.inference_mode()
def predict(model, data: Data, split: Split, loss_fn, batch_size: int) -> torch.Tensor:
    """Predicted class of every example of a split, on the CPU."""
    model.eval()
    chunks = [loss_fn.predict(model(x)) for x, _ in data.batches(split, batch_size)]
    return torch.cat(chunks).cpu()
