"""``dgm eval DATASET --corruptions all|NAMES --severities 1,3,5``: accuracy and repair under
natural corruptions (``zoo.evaluation.natural``), on the same seeded test subset as the ε sweep.

``--cycles fixed-point --max-cycles 50`` runs every CNN-F to its fixed point instead of its own
cycles; ``--cycles N`` sets the cycles of every CNN-F. For CIFAR-10, corruptions whose canonical
CIFAR-10-C file is in ``--data-dir`` / ``$DGM_DATA_DIR`` (``CIFAR-10-C/<name>.npy`` with
``labels.npy``) are read from it; the others are generated.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from backends import DGMError
from zoo.corruptions import cifar10c_files, load_cifar10c, parse_corruptions, parse_severities
from zoo.data import DataError, load_cifar10, load_fashion_mnist

DEFAULT_MODELS = {"fashion-mnist": ("fashion_cnn", "fashion_cnnf"),
                  "cifar10": ("cnn_wrn_16_2", "cnnf_wrn_16_2")}


def _arg(parse):
    def convert(text: str):
        try:
            return parse(text)
        except DGMError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return convert


def cycles_arg(text: str) -> int | str:
    """"fixed-point" or an integer >= 0."""
    if text == "fixed-point":
        return text
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 'fixed-point' or an integer >= 0, got "
                                         f"{text!r}")
    return value


def add_corruption_arguments(p: argparse.ArgumentParser) -> None:
    """The options of the natural-corruption evaluation (the rest are ``dgm eval``'s:
    ``--models``, ``--n-examples``, ``--out``, ``--seed``, ``--batch-size``, ``--strip-n``,
    ``--data-dir``, ``--threads``, ``--progress``, ``--untrained``)."""
    p.add_argument("--corruptions", type=_arg(parse_corruptions), default=None,
                   help="natural corruptions instead of the ε sweep: all, a family (noise, "
                        "blur, weather, digital) or comma-separated names")
    p.add_argument("--severities", type=_arg(parse_severities), default=(1, 2, 3, 4, 5),
                   help="comma-separated severities in 1..5")
    p.add_argument("--cycles", type=cycles_arg, default=None,
                   help="CNN-F cycles: an integer, or fixed-point (each image until its state "
                        "stops changing, at most --max-cycles); default: each model's own")
    p.add_argument("--max-cycles", type=int, default=50, help="cap of --cycles fixed-point")
    p.add_argument("--corruption-seed", type=int, default=0, help="seeds the corruptions")


def _data(dataset: str, n: int, seed: int, data_dir):
    from zoo.evaluation import fixed_subset
    x, y = (load_fashion_mnist if dataset == "fashion-mnist" else load_cifar10)("test", data_dir)
    idx = fixed_subset(len(y), n, seed)
    return torch.from_numpy(x[idx]), torch.from_numpy(y[idx]), idx


def _canonical(dataset: str, data_dir, idx: np.ndarray, y: torch.Tensor):
    """The CIFAR-10-C reader for the subset, or None (no files, or another dataset)."""
    if dataset != "cifar10":
        return None, None
    directory, files = cifar10c_files(data_dir)
    if directory is None:
        return None, None
    labels = np.load(directory / "labels.npy", mmap_mode="r")
    n = len(labels) // 5
    if idx.max() >= n or not np.array_equal(np.asarray(labels[idx], dtype=np.int64), y.numpy()):
        raise DataError(f"{directory}: the CIFAR-10-C labels do not match the CIFAR-10 test set "
                        f"at the subset's indices; the canonical files follow the original test "
                        f"order (use the cifar-10-batches-py test set)")
    return directory, lambda name, s: (load_cifar10c(name, s, data_dir, idx)[0]
                                       if name in files else None)


def run_corruptions(args) -> int:
    from zoo.evaluation.natural import NaturalConfig, check_inputs, run_natural

    from ._args import load_models
    if args.threads:
        torch.set_num_threads(args.threads)
    specs = args.models
    if tuple(specs) == DEFAULT_MODELS["fashion-mnist"]:
        specs = DEFAULT_MODELS[args.dataset]
    config = NaturalConfig(corruptions=args.corruptions, severities=args.severities,
                           seed=args.corruption_seed, batch_size=args.batch_size,
                           fixed_point=args.cycles == "fixed-point",
                           max_cycles=args.max_cycles, strip_n=args.strip_n)
    models = load_models(specs, args.untrained)
    if isinstance(args.cycles, int):
        for net in models.values():
            if net.cycles:
                net.cycles = args.cycles
    x, y, idx = _data(args.dataset, args.n_examples, args.seed, args.data_dir)
    directory, canonical = _canonical(args.dataset, args.data_dir, idx, y)
    check_inputs(models, x, y)
    mode = "fixed point" if config.fixed_point else "cycles " + ", ".join(
        f"{m}={net.cycles}" for m, net in models.items())
    print(f"natural corruptions: {', '.join(models)} on {len(y)} {args.dataset} test images "
          f"(seed {args.seed}); {len(config.corruptions)} corruptions x severities "
          f"{', '.join(map(str, config.severities))}; {mode}"
          + (f"; CIFAR-10-C files from {directory}" if directory else ""), flush=True)
    header = dict(command="eval --corruptions", dataset=args.dataset, subset_seed=args.seed,
                  subset_indices=idx.tolist(), models_spec=list(specs),
                  untrained=args.untrained, argv=sys.argv[1:],
                  cards={m: getattr(net, "card", {}).get("sha256") for m, net in models.items()})
    run_natural(models, x, y, config, args.out, canonical=canonical, header=header,
                progress=args.progress)
    return 0
