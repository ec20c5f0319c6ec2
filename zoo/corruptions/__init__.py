"""Natural image corruptions (CIFAR-10-C / MNIST-C style), seeded and deterministic, for
grayscale 28×28 and RGB 32×32 images (any square size ≥ 16 works), and the canonical
CIFAR-10-C files.

Fifteen corruptions in four families, five severities each; the parameters, their sources and
every deviation from CIFAR-10-C / MNIST-C are one table (``_table.py``, ``table_markdown()``).
Images are (N, C, H, W) floats in [0, 1]; bad names, severities, shapes or ranges raise one
``DGMError`` before any work. Nothing here imports the CLI or torch.

Example:
    >>> from zoo.corruptions import corrupt, CORRUPTIONS
    >>> y = corrupt(x01, "gaussian_noise", severity=3, seed=0)   # x01 in [0, 1]
"""
from ._api import (FUNCTIONS, check_images, corrupt, family, image_rng, parse_corruptions,
                   parse_severities, to_signed, to_unit)
from ._cifar10c import cifar10c_files, load_cifar10c
from ._table import CORRUPTIONS, FAMILIES, MEANING, NOTES, PARAMS, SEVERITIES, table_markdown

__all__ = ["CORRUPTIONS", "FAMILIES", "FUNCTIONS", "MEANING", "NOTES", "PARAMS", "SEVERITIES",
           "check_images", "cifar10c_files", "corrupt", "family", "image_rng",
           "load_cifar10c", "parse_corruptions", "parse_severities", "table_markdown", "to_signed",
           "to_unit"]
