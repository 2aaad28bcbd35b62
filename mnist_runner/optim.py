"""Optimizer and learning-rate schedule registries.

- `OPTIMIZERS`: `name -> builder(params, **options) -> torch.optim.Optimizer`.
- `SCHEDULERS`: `name -> builder(optimizer, epochs, steps_per_epoch, **options) -> Schedule | None`.
  A schedule is stepped once per epoch (`step`, `exponential`, `cosine`) or once per training
  step (`onecycle`, over exactly `epochs * steps_per_epoch` steps).
"""

from dataclasses import dataclass

import torch
from torch.optim import lr_scheduler

from .registry import OPTIMIZERS, SCHEDULERS


def build_optimizer(cfg, params) -> torch.optim.Optimizer:
    return OPTIMIZERS.build(cfg, params)


@OPTIMIZERS.register
def sgd(params, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


@OPTIMIZERS.register
def adam(params, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


@OPTIMIZERS.register
def adamw(params, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, amsgrad=False):
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


@OPTIMIZERS.register
def adadelta(params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
    return torch.optim.Adadelta(params, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay)


@OPTIMIZERS.register
def rmsprop(params, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    return torch.optim.RMSprop(
        params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered
    )


@dataclass
class Schedule:
    """A torch scheduler and when to step it: after every `epoch` or every training `step`."""

    scheduler: lr_scheduler.LRScheduler
    interval: str  # "epoch" or "step"

    def __post_init__(self):
        if self.interval == "step":  # stepped right after each optimizer.step(), wherever it runs
            self.scheduler.optimizer.register_step_post_hook(lambda *_: self.scheduler.step())

    def end_epoch(self) -> None:
        if self.interval == "epoch":
            self.scheduler.step()

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)


def build_scheduler(cfg, optimizer, epochs: int, steps_per_epoch: int) -> Schedule | None:
    """The schedule the `scheduler` group names, or None for `none`."""
    return SCHEDULERS.build(cfg, optimizer, epochs=epochs, steps_per_epoch=steps_per_epoch)


@SCHEDULERS.register("none")
def no_schedule(optimizer, epochs, steps_per_epoch):
    return None


@SCHEDULERS.register
def step(optimizer, epochs, steps_per_epoch, step_size=10, gamma=0.1):
    return Schedule(lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma), "epoch")


@SCHEDULERS.register
def exponential(optimizer, epochs, steps_per_epoch, gamma=0.95):
    return Schedule(lr_scheduler.ExponentialLR(optimizer, gamma=gamma), "epoch")


@SCHEDULERS.register
def cosine(optimizer, epochs, steps_per_epoch, eta_min=0.0):
    """Cosine annealing from the optimizer's lr to eta_min over the run's epochs."""
    return Schedule(lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=eta_min), "epoch")


@SCHEDULERS.register
def onecycle(
    optimizer,
    epochs,
    steps_per_epoch,
    max_lr=0.1,
    pct_start=0.3,
    anneal_strategy="cos",
    div_factor=25.0,
    final_div_factor=1e4,
):
    """Smith's one-cycle policy, stepped after every training step over the whole run."""
    scheduler = lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=max_lr,
        total_steps=epochs * steps_per_epoch,
        pct_start=pct_start,
        anneal_strategy=anneal_strategy,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
    )
    return Schedule(scheduler, "step")
