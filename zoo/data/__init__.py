"""Dataset loading for the model zoo: Fashion-MNIST, CIFAR-10, augmentation and batching.

Loaders return numpy arrays (float32 images in [-1, 1], int64 labels) and raise ``DataError``
for missing or corrupt data; ``iterate_batches`` and ``random_crop_flip`` work in torch.
"""

from ._augment import random_crop_flip
from ._batches import iterate_batches, num_batches
from ._errors import DataError
from ._split import train_val_split
from .cifar10 import CIFAR10_CLASSES, load_cifar10
from .fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist

__all__ = [
    "CIFAR10_CLASSES",
    "FASHION_MNIST_CLASSES",
    "DataError",
    "iterate_batches",
    "load_cifar10",
    "load_fashion_mnist",
    "num_batches",
    "random_crop_flip",
    "train_val_split",
]
