"""mnist_runner: a Hydra-driven experiment runner for MNIST-family image classification.

From Python (docs/python.md): `train("model=mlp", "trainer.epochs=3")` runs as the command line
would, in this process, and returns the run; `load_runs("multirun")` reads the runs below some
folders, for pandas (`.frame()`, `.epochs()`) and plots. Importing the package imports neither torch,
Hydra nor pandas.

The plugin API (docs/own-code.md):

    from mnist_runner import register_model

    @register_model
    def my_net(input_shape, num_classes, width=64):  # selectable as model=my_net model.width=128
        ...

A model builder gets `input_shape` (C, H, W) and `num_classes`, a dataset builder returns the arrays
an npz dataset holds, a loss builder returns a loss module, an optimizer builder gets the parameters
first; each gets its options (its keyword arguments with defaults, which become the config keys) by
keyword. `list_models()` etc. name every entry, the built-in ones included.
"""

from .registry import DATASETS, LOSSES, MODELS, OPTIMIZERS
from .results import load_runs
from .train import train  # the function: the entry-point module stays importable as mnist_runner.train

__version__ = "0.1.0"

register_model = MODELS.register
register_dataset = DATASETS.register
register_loss = LOSSES.register
register_optimizer = OPTIMIZERS.register
list_models = MODELS.list
list_datasets = DATASETS.list
list_losses = LOSSES.list
list_optimizers = OPTIMIZERS.list

__all__ = [
    "train",
    "load_runs",
    "register_model",
    "register_dataset",
    "register_loss",
    "register_optimizer",
    "list_models",
    "list_datasets",
    "list_losses",
    "list_optimizers",
]
