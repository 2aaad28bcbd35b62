"""mnist_runner: a Hydra-driven experiment runner for MNIST-family image classification."""

__version__ = "0.1.0"
