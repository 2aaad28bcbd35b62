"""Optimizer and learning-rate schedule registries.

- `OPTIMIZERS`: `name -> builder(params, **options) -> torch.optim.Optimizer`.
- `SCHEDULERS`: `name -> builder(optimizer, epochs, steps_per_epoch, **options) -> Schedule | None`.
  A schedule is stepped once per epoch (`step`, `exponential`, `cosine`) or once per training
  step (`onecycle`, over exactly `epochs * steps_per_epoch` steps).
"""

from dataclasses import dataclass

import torch
from torch.optim import lr_scheduler

from .registry import OPTIMIZERS, SCHEDULERS, ConfigError
from .rules import BETAS, NON_NEGATIVE, POSITIVE, UNIT_HALF_OPEN, UNIT_OPEN, Rule, integer, number, one_of, show


def build_optimizer(cfg, params) -> torch.optim.Optimizer:
    return OPTIMIZERS.build(cfg, params)


def _nesterov_needs_momentum(options: dict) -> None:
    if options.get("nesterov") is True and not options.get("momentum"):
        raise ConfigError(
            f"optimizer.nesterov=true needs optimizer.momentum > 0 (given {show(options.get('momentum'))})"
        )


STEP = {"lr": POSITIVE, "weight_decay": NON_NEGATIVE}  # the options every optimizer here has
ADAM = {**STEP, "eps": POSITIVE, "betas": BETAS}


@OPTIMIZERS.register(rules={**STEP, "momentum": UNIT_HALF_OPEN}, check=_nesterov_needs_momentum)
def sgd(params, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


@OPTIMIZERS.register(rules=ADAM)
def adam(params, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


@OPTIMIZERS.register(rules=ADAM)
def adamw(params, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, amsgrad=False):
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


@OPTIMIZERS.register(rules={**STEP, "eps": POSITIVE, "rho": number(0, 1)})
def adadelta(params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
    return torch.optim.Adadelta(params, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay)


@OPTIMIZERS.register(rules={**STEP, "eps": POSITIVE, "alpha": number(0, 1), "momentum": UNIT_HALF_OPEN})
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


@SCHEDULERS.register(rules={"step_size": integer(1), "gamma": POSITIVE})
def step(optimizer, epochs, steps_per_epoch, step_size=10, gamma=0.1):
    return Schedule(lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma), "epoch")


def _one_factor_per_stage(options: dict) -> None:
    milestones, factors = options.get("milestones"), options.get("factors")
    if not (isinstance(milestones, list) and isinstance(factors, list) and len(factors) == len(milestones) + 1):
        raise ConfigError(
            f"scheduler.factors={show(factors)} is not allowed with scheduler.milestones={show(milestones)}: it needs "
            "one factor per stage, one more than the milestones"
        )
    if milestones != sorted(set(milestones)):
        raise ConfigError(f"scheduler.milestones={show(milestones)} is not allowed; it must be increasing epochs")


@SCHEDULERS.register(
    rules={
        "milestones": Rule(
            lambda v: isinstance(v, list) and all(isinstance(m, int) and m >= 1 for m in v), "a list of epochs >= 1"
        ),
        "factors": Rule(lambda v: isinstance(v, list) and all(POSITIVE.ok(f) for f in v), "a list of numbers > 0"),
    },
    check=_one_factor_per_stage,
)
def steps(optimizer, epochs, steps_per_epoch, milestones=(), factors=(1.0,)):
    """A table of learning rates by stage: the optimizer's lr times factors[0] until epoch milestones[0],
    then times factors[1], ... (LeCun et al. 1998's global learning-rate schedule, section V.B)."""
    import bisect

    milestones, factors = list(milestones), list(factors)
    return Schedule(lr_scheduler.LambdaLR(optimizer, lambda e: factors[bisect.bisect_right(milestones, e)]), "epoch")


@SCHEDULERS.register(rules={"gamma": POSITIVE})
def exponential(optimizer, epochs, steps_per_epoch, gamma=0.95):
    return Schedule(lr_scheduler.ExponentialLR(optimizer, gamma=gamma), "epoch")


@SCHEDULERS.register(rules={"eta_min": NON_NEGATIVE})
def cosine(optimizer, epochs, steps_per_epoch, eta_min=0.0):
    """Cosine annealing from the optimizer's lr to eta_min over the run's epochs."""
    return Schedule(lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=eta_min), "epoch")


@SCHEDULERS.register(
    rules={
        "max_lr": POSITIVE,
        "pct_start": UNIT_OPEN,
        "anneal_strategy": one_of("cos", "linear"),
        "div_factor": POSITIVE,
        "final_div_factor": POSITIVE,
        "base_momentum": UNIT_HALF_OPEN,
        "max_momentum": UNIT_HALF_OPEN,
    }
)
def onecycle(
    optimizer,
    epochs,
    steps_per_epoch,
    max_lr=0.1,
    pct_start=0.3,
    anneal_strategy="cos",
    div_factor=25.0,
    final_div_factor=1e4,
    cycle_momentum=True,
    base_momentum=0.85,
    max_momentum=0.95,
):
    """Smith's one-cycle policy, stepped after every training step over the whole run. With `cycle_momentum`
    (torch's default) the momentum cycles too, inversely to the lr, between max_momentum and base_momentum:
    SGD's momentum, or Adam's beta1 (which replaces optimizer.betas[0])."""
    scheduler = lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=max_lr,
        total_steps=epochs * steps_per_epoch,
        pct_start=pct_start,
        anneal_strategy=anneal_strategy,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        cycle_momentum=cycle_momentum,
        base_momentum=base_momentum,
        max_momentum=max_momentum,
    )
    return Schedule(scheduler, "step")
