"""The small CNNs of seeds 003 and 004, layer for layer (sizes in the comments for 1x28x28 inputs).

They take any input shape their convolutions and pooling leave at least 1x1 of: the first layer
reads the input's channels and the first linear layer the features left (as for 1x28x28 in the seeds).

- `cnn_small`: seed 003's default CNN, Kaiming-normal init as in the seed.
- `cnn2`: seed 003's CNN2 (size-preserving 5x5 convolutions), Kaiming-normal init.
- `cnn3`: seed 003's CNN3 (four conv-BN-ReLU blocks, dropout 0.05 before one linear layer).
- `cnn_10_20`: seed 004's CNN; like the seed, no activation between fc1 and fc2.
- `fast_cnn`: the `mnist_fast` preset's (conf/experiment/mnist_fast.yaml): about 99.1% in one epoch,
  built for a CPU: few channels (multiples of 8, which oneDNN's kernels like), each convolution's max
  pooling before its batch norm and ReLU (the same function as after, on a quarter of the values).

The seeds ended with log_softmax; here models return raw scores and the loss applies it.
"""

from torch import nn

from . import MODELS, flat_features


def kaiming(*layers: nn.Module, last: nn.Module) -> None:
    """Seed 003's init: Kaiming-normal weights (relu gain), `linear` gain for the last layer."""
    for layer in layers:
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    nn.init.kaiming_normal_(last.weight, nonlinearity="linear")


@MODELS.register
def cnn_small(input_shape, num_classes):
    conv1, conv2 = nn.Conv2d(input_shape[0], 16, 5), nn.Conv2d(16, 32, 3)
    features = [
        conv1, nn.ReLU(), nn.MaxPool2d(2),  # 16@12x12
        conv2, nn.ReLU(), nn.MaxPool2d(2),  # 32@5x5
    ]  # fmt: skip
    fc1, fc2 = nn.Linear(flat_features("cnn_small", features, input_shape), 128), nn.Linear(128, num_classes)
    kaiming(conv1, conv2, fc1, last=fc2)
    return nn.Sequential(*features, nn.Flatten(), fc1, nn.ReLU(), fc2)


@MODELS.register
def cnn2(input_shape, num_classes):
    conv1, conv2 = nn.Conv2d(input_shape[0], 32, 5, padding=2), nn.Conv2d(32, 64, 5, padding=2)
    features = [
        conv1, nn.ReLU(), nn.MaxPool2d(2),  # 32@14x14
        conv2, nn.ReLU(), nn.MaxPool2d(2),  # 64@7x7
    ]  # fmt: skip
    fc1, fc2 = nn.Linear(flat_features("cnn2", features, input_shape), 256), nn.Linear(256, num_classes)
    kaiming(conv1, conv2, fc1, last=fc2)
    return nn.Sequential(*features, nn.Flatten(), fc1, nn.ReLU(), fc2)


def conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 5, padding=2), nn.BatchNorm2d(cout), nn.ReLU()]


@MODELS.register
def cnn3(input_shape, num_classes, dropout=0.05):
    features = [
        *conv_bn_relu(input_shape[0], 16),
        *conv_bn_relu(16, 32),
        *conv_bn_relu(32, 64), nn.MaxPool2d(2),  # 64@14x14
        *conv_bn_relu(64, 128), nn.MaxPool2d(3, stride=1),  # 128@12x12
    ]  # fmt: skip
    flat = flat_features("cnn3", features, input_shape)
    return nn.Sequential(*features, nn.Flatten(), nn.Dropout(float(dropout)), nn.Linear(flat, num_classes))


@MODELS.register
def cnn_10_20(input_shape, num_classes):
    features = [
        nn.Conv2d(input_shape[0], 10, 5), nn.ReLU(), nn.MaxPool2d(2),  # 10@12x12
        nn.Conv2d(10, 20, 5), nn.ReLU(), nn.MaxPool2d(2),  # 20@4x4
    ]  # fmt: skip
    flat = flat_features("cnn_10_20", features, input_shape)
    return nn.Sequential(*features, nn.Flatten(), nn.Linear(flat, 128), nn.Linear(128, num_classes))  # no ReLU between


@MODELS.register
def fast_cnn(input_shape, num_classes, channels=(8, 16), hidden=128):
    first, second = (int(c) for c in channels)
    features = [
        nn.Conv2d(input_shape[0], first, 5, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(first), nn.ReLU(),  # 8@12x12
        nn.Conv2d(first, second, 3, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(second), nn.ReLU(),  # 16@5x5
    ]  # fmt: skip
    flat = flat_features("fast_cnn", features, input_shape)
    return nn.Sequential(*features, nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
