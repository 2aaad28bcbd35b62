"""Every model: parameter counts (the seeds' where they print them), shapes, structure, init, errors."""

import pytest
import torch
from conftest import ROOT, builtin_entries, compose_config
from torch import nn

from mnist_runner.models import MODELS, build_model, count_parameters
from mnist_runner.registry import ConfigError
from mnist_runner.validate import validate

# conf/model option -> (parameters for 1x28x28 input and 10 classes, outputs). Seeds print 61,706
# (lenet_full), 60,806 (lenet_subset), 101,770 (mlp_128) and 47,658 (cnn_10_20).
COUNTS = {
    "lenet_full": (61_706, 10),
    "lenet_subset": (60_806, 10),
    "mlp_128": (101_770, 10),
    "cnn_10_20": (47_658, 10),
    "logistic": (785, 1),
    "softmax": (7_850, 10),
    "mlp": (101_770, 10),
    "mlp_bn3": (670_730, 10),  # 401,920 + 262,656 + 1,024 (BN) + 5,130
    "mlp_bn4": (934_410, 10),  # one more 262,656 + 1,024
    "cnn_small": (108_874, 10),  # 416 + 4,640 + 102,528 + 1,290
    "cnn2": (857_738, 10),  # 832 + 51,264 + 803,072 + 2,570
    "cnn3": (454_250, 10),  # convs 269,440 + BN 480 + 18,432 * 10 + 10
    "vgg11": (28_148_362, 10),  # convs + BN 9,224,832; classifier 512-4096-4096-10
    "lenet5_1998": (60_850, 10),  # C1 156, S2 12, C3 1,516, S4 32, C5 48,120, F6 10,164, output 850
    "simard2003_cnn": (132_540, 10),  # 130 + 6,300 + 125,100 + 1,010
    "fast_cnn": (54_018, 10),  # 200 + 16 (BN) + 1,152 + 32 (BN) + 51,328 + 1,290
}


def build(option: str, input_shape=(1, 28, 28), num_classes=10, *overrides) -> nn.Module:
    cfg = compose_config(f"model={option}", *overrides)
    return build_model(cfg.model, input_shape, num_classes)


def test_every_model_config_has_a_count():
    assert sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml")) == sorted(COUNTS)
    assert {compose_config(f"model={o}").model.name for o in COUNTS} == set(builtin_entries(MODELS))


@pytest.mark.parametrize("option", sorted(COUNTS))
def test_parameter_count_and_output_shape(option):
    total, outputs = COUNTS[option]
    torch.manual_seed(0)
    model = build(option).eval()
    assert count_parameters(model) == {"total": total, "trainable": total}
    with torch.no_grad():
        assert model(torch.rand(3, 1, 28, 28)).shape == (3, outputs)


@pytest.mark.parametrize("option", ["softmax", "mlp_128", "cnn_small", "cnn2", "cnn3", "cnn_10_20"])
def test_models_return_raw_scores_not_log_probabilities(option):
    torch.manual_seed(0)
    with torch.no_grad():
        out = build(option).eval()(torch.rand(4, 1, 28, 28) * 3)
    assert not torch.allclose(out.logsumexp(dim=1), torch.zeros(4), atol=1e-3)


def test_number_of_classes_comes_from_the_dataset():
    assert build("cnn_10_20", (1, 28, 28), 47)(torch.zeros(2, 1, 28, 28)).shape == (2, 47)
    assert build("mlp_bn3", (1, 28, 28), 2).eval()(torch.zeros(2, 1, 28, 28)).shape == (2, 2)


def layer_types(model: nn.Module) -> list[str]:
    return [type(m).__name__ for m in model.modules() if not list(m.children())]


def test_mlp_presets_have_the_seeds_layers():
    assert layer_types(build("mlp_128")) == ["Flatten", "Linear", "ReLU", "Linear"]
    assert layer_types(build("mlp_bn3")) == ["Flatten", "Linear", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert layer_types(build("mlp_bn4")) == [
        "Flatten",
        "Linear",
        "ReLU",
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Linear",
    ]


def test_mlp_options():
    model = build(
        "mlp",
        (1, 28, 28),
        10,
        "model.hidden=[32,16]",
        "model.activation=tanh",
        "model.batch_norm=all",
        "model.dropout=0.2",
    )
    assert layer_types(model) == [
        "Flatten",
        "Linear",
        "BatchNorm1d",
        "Tanh",
        "Dropout",
        "Linear",
        "BatchNorm1d",
        "Tanh",
        "Dropout",
        "Linear",
    ]
    model = build("mlp", (1, 28, 28), 10, "model.hidden=[8,8]", "model.batch_norm=[true,false]")
    assert layer_types(model) == ["Flatten", "Linear", "BatchNorm1d", "ReLU", "Linear", "ReLU", "Linear"]


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.activation=gelu", "model.activation='gelu' is not allowed; it must be one of: relu, tanh"),
        ("model.batch_norm=some", "model.batch_norm='some' is not allowed; it must be one of: none, all, after_first"),
        ("model.batch_norm=[true]", r"model.batch_norm=\[true\] is not allowed with model.hidden=\[512,512\]: it "),
        ("model.dropout=1.5", r"model.dropout=1.5 is not allowed; it must be a number in \[0, 1\)"),
        ("model.hidden=[]", r"model.hidden=\[\] is not allowed; it must be a non-empty list of layer widths"),
        ("model.hidden=128", r"model.hidden=128 is not allowed; it must be a non-empty list of layer widths"),
    ],
)
def test_mlp_rejects_bad_options_before_it_is_built(override, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose_config("model=mlp_bn3", override))


def test_cnn_10_20_has_no_activation_between_its_linear_layers():
    types = layer_types(build("cnn_10_20"))
    assert types[-3:] == ["Flatten", "Linear", "Linear"]


@pytest.mark.parametrize("option", ["cnn_small", "cnn2"])
def test_seed_003_cnns_use_kaiming_normal_init(option):
    torch.manual_seed(0)
    convs = [m for m in build(option).modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for i, layer in enumerate(convs):
        fan_in = layer.weight[0].numel()
        gain = 1.0 if i == len(convs) - 1 else 2**0.5  # relu gain; linear for the last layer
        expected = gain / fan_in**0.5  # PyTorch's default init would give 1 / sqrt(3 fan_in)
        assert layer.weight.std().item() == pytest.approx(expected, rel=0.15), (i, fan_in)


def test_cnn3_and_vgg11_structure():
    cnn3 = layer_types(build("cnn3"))
    assert cnn3.count("BatchNorm2d") == 4 and cnn3[-2:] == ["Dropout", "Linear"]
    assert [m.p for m in build("cnn3").modules() if isinstance(m, nn.Dropout)] == [0.05]
    vgg = build("vgg11", (1, 28, 28), 10, "model.width=0")
    assert [m.out_channels for m in vgg.modules() if isinstance(m, nn.Conv2d)] == [
        64,
        128,
        256,
        256,
        512,
        512,
        512,
        512,
    ]
    assert layer_types(vgg).count("MaxPool2d") == 5 and layer_types(vgg)[0] == "ZeroPad2d"
    assert count_parameters(vgg)["total"] == 9_224_832 + 5_130
    assert build("vgg11", (1, 28, 28), 10, "model.width=64").eval()(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("option", ["lenet_full", "lenet_subset", "vgg11"])
def test_models_reject_inputs_they_cannot_take(option):
    name = compose_config(f"model={option}").model.name
    with pytest.raises(
        ConfigError, match=rf"model={name} takes inputs of shape \(1, 28, 28\) but the dataset gives \(3, 32, 32\)"
    ):
        build(option, (3, 32, 32), 10)


@pytest.mark.parametrize(
    "option, too_small",
    [("cnn_small", (1, 9, 9)), ("cnn2", (1, 3, 8)), ("cnn3", (1, 5, 5)), ("cnn_10_20", (3, 11, 11))],
)
def test_cnns_take_any_input_their_layers_leave_features_of(option, too_small):
    """Colour and other sizes (issue 13: dataset=npz, image_folder); 1x28x28 keeps the seeds' layer sizes."""
    for shape in ((3, 32, 32), (1, 16, 20)):
        model = build(option, shape, 7).eval()
        assert model(torch.zeros(2, *shape)).shape == (2, 7)
    with pytest.raises(ConfigError) as error:
        build(option, too_small, 10)
    assert str(error.value).startswith(f"model={option} cannot take inputs of shape {too_small}: they are too small")


@pytest.mark.parametrize("option", ["logistic", "softmax", "mlp"])
def test_flattening_models_take_any_input(option):
    model = build(option, (3, 8, 8), 10)
    assert model(torch.zeros(2, 3, 8, 8)).shape[0] == 2
