"""A worked plugin: one model and one dataset, registered in one module (docs/own-code.md).

From the folder holding this file (no YAML file to write):

    python -m mnist_runner plugins=[my_plugin] model=tiny_cnn dataset=stripes trainer.epochs=3

`model.channels`, `model.dropout`, `dataset.n_train`, ... are config keys (the builders' keyword defaults):
they show in `--cfg job`, can be overridden and swept, and are compared by mnist-runner-compare.
"""

import numpy as np
from torch import nn

from mnist_runner import register_dataset, register_model


@register_model
def tiny_cnn(input_shape, num_classes, channels=16, dropout=0.0):
    """3x3 convolution with `channels` filters, ReLU, global max-pool, dropout, linear: takes any input shape."""
    return nn.Sequential(
        nn.Conv2d(input_shape[0], channels, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(channels, num_classes),
    )


STRIPES = ["horizontal", "vertical", "diagonal"]


@register_dataset
def stripes(n_train=2000, n_test=500, size=16, noise=60, seed=0):
    """Generated grayscale images holding one bright stripe: horizontal, vertical or diagonal (3 classes).

    A dataset builder returns the arrays an npz dataset holds: uint8 images N x H x W (or N x C x H x W),
    integer labels, and optionally the class names.
    """
    rng = np.random.default_rng(seed)

    def draw(n):
        labels = rng.integers(0, len(STRIPES), size=n)
        images = rng.integers(0, noise + 1, size=(n, size, size)).astype(np.uint8)
        for image, label, at in zip(images, labels, rng.integers(1, size - 1, size=n)):
            if label == 0:
                image[at, :] = 255
            elif label == 1:
                image[:, at] = 255
            else:
                rows = np.arange(size)
                image[rows, (rows + at) % size] = 255
        return images, labels

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test, "classes": STRIPES}
