"""Losses: the seeds' formulas and printed values, binary accuracy, and the loss/dataset/model fit."""

import pytest
import torch
from conftest import ROOT, builtin_entries, compose_config, run_in_process
from torch.nn import functional as F

from mnist_runner.losses import LOSSES, build_loss, check_fit, logistic_loss, sum_of_squares_loss
from mnist_runner.registry import ConfigError


def test_every_loss_config_builds_its_registry_entry():
    options = sorted(p.stem for p in (ROOT / "conf" / "loss").glob("*.yaml"))
    assert options == ["cross_entropy", "logistic", "mse", "sum_of_squares"] == builtin_entries(LOSSES)
    for option in options:
        loss = build_loss(compose_config(f"loss={option}").loss)
        assert loss.binary == (option in ("logistic", "sum_of_squares"))


def test_sum_of_squares_reproduces_the_five_values_seed_000_prints():
    # The seed's own calls, with its broadcasting shapes: ([1e6, 1], [-1]) scores two outputs against one label.
    calls = [
        ([1000000, 1], [-1]),
        ([-1000000], [-1]),
        ([1000000], [1]),
        ([-1000000], [1]),
        ([1000000, -100000], [1, -1]),
    ]
    values = [sum_of_squares_loss(torch.as_tensor(z), torch.as_tensor(y)).item() for z, y in calls]
    assert [round(v, 4) for v in values] == [1.5344, 0.0, 0.0, 2.0, 0.0]


def test_sum_of_squares_is_the_squared_distance_to_the_one_hot_target():
    z, labels = torch.tensor([[-2.0], [0.3], [1.5]]), torch.tensor([0, 1, 0])
    probs = torch.cat([torch.sigmoid(-z), torch.sigmoid(z)], dim=1)  # (P(y=-1), P(y=+1))
    expected = (probs - F.one_hot(labels, 2)).square().sum(dim=1).mean()
    assert build_loss(compose_config("loss=sum_of_squares").loss)(z, labels).item() == pytest.approx(expected.item())


def test_logistic_loss_is_mean_log_one_plus_exp_minus_yz_and_stable():
    z, y = torch.tensor([-2.0, 0.0, 0.5, 3.0]), torch.tensor([1.0, -1.0, 1.0, -1.0])
    assert logistic_loss(z, y).item() == pytest.approx(torch.log1p(torch.exp(-y * z)).mean().item())
    assert logistic_loss(torch.tensor([-1000.0]), torch.tensor([1.0])).item() == pytest.approx(1000.0)
    loss = build_loss(compose_config("loss=logistic").loss)  # class index 0 is y = -1, index 1 is y = +1
    assert loss(z[:, None], torch.tensor([1, 0, 1, 0])).item() == pytest.approx(logistic_loss(z, y).item())


def test_cross_entropy_equals_the_seeds_log_softmax_plus_nll():
    torch.manual_seed(0)
    logits, labels = torch.randn(8, 10), torch.randint(0, 10, (8,))
    loss = build_loss(compose_config("loss=cross_entropy").loss)
    assert loss(logits, labels).item() == pytest.approx(F.nll_loss(F.log_softmax(logits, dim=1), labels).item())
    smooth = build_loss(compose_config("loss=cross_entropy", "loss.label_smoothing=0.1").loss)
    assert smooth(logits, labels).item() > loss(logits, labels).item()


def test_mse_is_the_squared_distance_between_softmax_and_one_hot_and_matches_sum_of_squares():
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 10), torch.randint(0, 10, (6,))
    mse = build_loss(compose_config("loss=mse").loss)
    expected = (logits.softmax(1) - F.one_hot(labels, 10)).square().sum(1).mean()
    assert mse(logits, labels).item() == pytest.approx(expected.item())
    z, two = torch.randn(6, 1), torch.randint(0, 2, (6,))  # two classes: scores (0, z) give sigmoid(z)
    sos = build_loss(compose_config("loss=sum_of_squares").loss)
    assert mse(torch.cat([torch.zeros_like(z), z], 1), two).item() == pytest.approx(sos(z, two).item(), rel=1e-5)


def test_binary_accuracy_counts_z_times_y_at_least_zero_as_correct():
    loss = build_loss(compose_config("loss=logistic").loss)
    z = torch.tensor([[2.0], [-1.0], [0.0], [0.0], [-3.0], [0.5]])
    labels = torch.tensor([1, 0, 0, 1, 1, 0])  # y = +1, -1, -1, +1, +1, -1
    assert loss.correct(z, labels).tolist() == [True, True, True, True, False, False]
    assert loss.predict(z).tolist() == [1, 0, 1, 1, 0, 1]


class FakeData:
    def __init__(self, num_classes, binary_labels="pm1"):
        self.class_names = [str(i) for i in range(num_classes)]
        self.num_classes, self.binary_labels = num_classes, binary_labels
        self.train = type("S", (), {"images": torch.zeros(1, 1, 28, 28, dtype=torch.uint8)})()

    def prepare(self, images):
        return images.float()


NAMES = {"loss": "logistic", "dataset": "mnist_4v9", "model": "logistic"}


@pytest.mark.parametrize(
    "num_classes, labels, model, got",
    [
        (10, "pm1", "logistic", r"dataset=mnist_4v9 \(10 classes, binary_labels=pm1\) and model=logistic \(1 output\)"),
        (2, "01", "logistic", r"dataset=mnist_4v9 \(2 classes, binary_labels=01\) and model=logistic \(1 output\)"),
        (2, "pm1", "softmax", r"dataset=mnist_4v9 \(2 classes, binary_labels=pm1\) and model=softmax \(2 outputs\)"),
    ],
)
def test_a_binary_loss_that_does_not_fit_names_loss_dataset_and_model(num_classes, labels, model, got):
    from mnist_runner.models import MODELS

    net = MODELS.get(model)((1, 28, 28), num_classes)
    loss = build_loss(compose_config("loss=logistic").loss)
    with pytest.raises(
        ConfigError,
        match=r"loss=logistic is a binary loss: it needs a two-class dataset "
        r"with binary_labels=pm1 .* and a one-output model .*; got " + got,
    ):
        check_fit(loss, {**NAMES, "model": model}, net, FakeData(num_classes, labels))
    check_fit(loss, NAMES, MODELS.get("logistic")((1, 28, 28), 2), FakeData(2))  # the fitting choice passes


def test_cross_entropy_needs_one_output_per_class():
    from mnist_runner.models import MODELS

    loss = build_loss(compose_config("loss=cross_entropy").loss)
    with pytest.raises(
        ConfigError,
        match=r"loss=cross_entropy needs a model with one output per class \(2\); "
        r"got dataset=mnist_4v9 .* model=logistic \(1 output\)",
    ):
        check_fit(loss, {**NAMES, "loss": "cross_entropy"}, MODELS.get("logistic")((1, 28, 28), 2), FakeData(2))


def test_misfit_fails_before_training(tmp_path, data_root):
    with pytest.raises(ConfigError, match="loss=sum_of_squares is a binary loss.*got dataset=mnist "):
        run_in_process(tmp_path, data_root, "loss=sum_of_squares", "model=logistic")
    assert not (tmp_path / "metrics.csv").exists()


def test_binary_run_trains_and_reports_binary_accuracy(tmp_path, data_root):
    summary = run_in_process(tmp_path, data_root, "experiment=lr_4v9_logistic", "trainer.epochs=3", "optimizer.lr=0.5")
    assert summary["status"] == "completed" and summary["params"]["total"] == 785
    assert summary["final"]["test_acc"] >= 0.9  # squares at distinct places: a line separates 4s from 9s
