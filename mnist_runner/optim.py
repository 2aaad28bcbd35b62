"""Optimizer registry: `name -> builder(params, **options) -> torch.optim.Optimizer`."""

import torch

from .registry import Registry

OPTIMIZERS: Registry = Registry("optimizer")


def build_optimizer(cfg, params) -> torch.optim.Optimizer:
    options = {k: v for k, v in cfg.items() if k != "name"}
    return OPTIMIZERS.get(cfg.name)(params, **options)


@OPTIMIZERS.register("sgd")
def sgd(params, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
    return torch.optim.SGD(
        params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov
    )
