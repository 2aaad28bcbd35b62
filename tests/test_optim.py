"""Optimizers and learning-rate schedules: every config builds its torch class; the lr per epoch."""

import csv

import pytest
import torch
from conftest import ROOT, builtin_entries, compose_config, run_in_process

from mnist_runner.optim import OPTIMIZERS, SCHEDULERS, build_optimizer, build_scheduler

OPTIMIZER_CLASSES = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adadelta": torch.optim.Adadelta,
    "rmsprop": torch.optim.RMSprop,
}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))


@pytest.mark.parametrize("option", sorted(OPTIMIZER_CLASSES))
def test_every_optimizer_config_builds_its_torch_class_with_its_settings(option):
    cfg = compose_config(f"optimizer={option}").optimizer
    opt = build_optimizer(cfg, [torch.nn.Parameter(torch.zeros(3))])
    assert type(opt) is OPTIMIZER_CLASSES[option]
    for key, value in cfg.items():
        if key != "name":
            assert opt.defaults[key] == (tuple(value) if key == "betas" else value), key


def test_optimizer_and_scheduler_configs_match_the_registries():
    assert options("optimizer") == builtin_entries(OPTIMIZERS) == sorted(OPTIMIZER_CLASSES)
    assert options("scheduler") == SCHEDULERS.list() == ["cosine", "exponential", "none", "onecycle", "step", "steps"]
    assert compose_config().scheduler.name == "none"


def lrs(tmp_path, data_root, *overrides) -> list[float]:
    summary = run_in_process(tmp_path, data_root, "model=softmax", "optimizer.lr=0.1", *overrides)
    assert summary["status"] == "completed"
    with open(tmp_path / "metrics.csv") as f:
        return [float(r["lr"]) for r in csv.DictReader(f)]


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["scheduler=none", "trainer.epochs=3"], [0.1, 0.1, 0.1]),
        (
            ["scheduler=step", "scheduler.step_size=2", "scheduler.gamma=0.1", "trainer.epochs=5"],
            [0.1, 0.1, 0.01, 0.01, 0.001],
        ),
        (["scheduler=exponential", "scheduler.gamma=0.5", "trainer.epochs=3"], [0.1, 0.05, 0.025]),
        (["scheduler=cosine", "scheduler.eta_min=0.0", "trainer.epochs=4"], [0.1, 0.0853553, 0.05, 0.0146447]),
    ],
)
def test_the_lr_of_each_epoch_is_in_metrics_csv(tmp_path, data_root, overrides, expected):
    assert lrs(tmp_path, data_root, *overrides) == pytest.approx(expected, rel=1e-5)


def test_onecycle_steps_every_batch_over_exactly_the_whole_run(tmp_path, data_root):
    # 300 fixture examples, batch 64: 5 steps per epoch, 15 in all; OneCycleLR raises if stepped more.
    got = lrs(
        tmp_path,
        data_root,
        "scheduler=onecycle",
        "scheduler.max_lr=0.4",
        "scheduler.pct_start=0.5",
        "scheduler.anneal_strategy=linear",
        "trainer.epochs=3",
        "trainer.batch_size=64",
    )
    start, end = 0.4 / 25, 0.4 / 25 / 1e4  # max_lr / div_factor, then / final_div_factor
    # torch's phases: warm-up over steps 0..6.5 (pct_start * 15 - 1), annealing over 6.5..14.
    assert got[0] == pytest.approx(start, rel=1e-5)  # epoch 1 starts at max_lr / div_factor
    assert got[1] == pytest.approx(start + (0.4 - start) * 5 / 6.5, rel=1e-5)  # after 5 steps
    assert got[2] == pytest.approx(0.4 + (end - 0.4) * (10 - 6.5) / 7.5, rel=1e-5)  # after 10 steps


def test_onecycle_spans_the_steps_it_is_given():
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    cfg = compose_config("scheduler=onecycle").scheduler
    schedule = build_scheduler(cfg, opt, epochs=2, steps_per_epoch=10)
    used = []
    for _ in range(20):
        used.append(opt.param_groups[0]["lr"])  # the lr this optimizer step uses
        opt.step()
    schedule.end_epoch()  # a no-op for a per-step schedule
    assert used[0] == pytest.approx(cfg.max_lr / cfg.div_factor)
    assert max(used) == pytest.approx(cfg.max_lr, rel=0.05) and used.index(max(used)) == 5
    assert used[-1] == pytest.approx(cfg.max_lr / cfg.div_factor / cfg.final_div_factor)
    assert build_scheduler(compose_config().scheduler, opt, epochs=2, steps_per_epoch=4) is None
