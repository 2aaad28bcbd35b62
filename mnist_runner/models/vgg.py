"""VGG-11 with batch norm (seed 002 compares its MLP against it), for 28x28 inputs zero-padded
to 32x32, so five 2x2 poolings leave 512@1x1 for the classifier."""

from torch import nn

from ..registry import ConfigError
from . import MODELS, require_input

VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


@MODELS.register
def vgg11(input_shape, num_classes, width=4096, dropout=0.5):
    """Classifier: 512 -> width -> width -> C with ReLU and dropout (width 0: one 512 -> C layer)."""
    require_input("vgg11", input_shape, (1, 28, 28))
    if int(width) < 0:
        raise ConfigError(f"model.width={width} must be >= 0 (0: a single linear classifier)")
    layers: list[nn.Module] = [nn.ZeroPad2d(2)]  # 28x28 -> 32x32
    channels = input_shape[0]
    for v in VGG11:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(channels, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
            channels = v
    layers.append(nn.Flatten())
    if int(width) == 0:
        layers.append(nn.Linear(512, num_classes))
    else:
        w = int(width)
        layers += [
            nn.Linear(512, w), nn.ReLU(), nn.Dropout(float(dropout)),
            nn.Linear(w, w), nn.ReLU(), nn.Dropout(float(dropout)),
            nn.Linear(w, num_classes),
        ]  # fmt: skip
    return nn.Sequential(*layers)
