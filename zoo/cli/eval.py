"""``dgm eval fashion-mnist|cifar10``: robustness of registered models on a fixed, seeded test subset.

Every model is attacked with PGD on each target (first / e2e / e2e-sum / BPDA) plus a transfer
attack from the CNN, at every ε (pixel units; inputs live in [-1, 1], so input units are 2×);
the report gives accuracy vs ε with the per-image worst case (`min`), Wilson intervals, a
McNemar test CNN-F vs CNN, accuracy over feedback iterations, gradient-masking checks and
repair strips, written to ``--out`` as results.jsonl, table.md and PNG figures.

Models are ``NAME`` or ``NAME.TAG`` (the hub's weights), ``NAME=PATH`` (weights file) or, with
``--untrained``, seeded random initialisations (for trying the pipeline only).

``dgm eval --table cifar10`` prints the seed's CIFAR-10 table instead
(``zoo.evaluation.cifar10.seed_table``).
"""
from __future__ import annotations

import time

import numpy as np
import torch

from zoo.data import load_cifar10, load_fashion_mnist
from zoo.evaluation import ATTACKS, CheckConfig, EvalConfig, fixed_subset, run_evaluation
from zoo.evaluation.cifar10 import TableConfig, seed_table, write_table

from backends import ConfigError
from zoo._outdir import check_writable

from ._args import CASCADE_DEFAULT, add_eval_options, add_model_options, load_models
from .eval_corruptions import add_corruption_arguments, run_corruptions

TABLE_MODELS = ("cnn_wrn_16_2", "cnnf_wrn_16_2")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("eval", help="robustness evaluation (PGD, BPDA, transfer, SPSA)",
                              description=__doc__.splitlines()[0])
    p.add_argument("dataset", nargs="?", default="fashion-mnist",
                   choices=("fashion-mnist", "cifar10"),
                   help="test set of the ε sweep, --corruptions or --table (cifar10 only)")
    add_model_options(p, ("fashion_cnn", "fashion_cnnf"))
    add_eval_options(p, out=None, n_examples=1000, eps=EvalConfig.eps, attacks=ATTACKS,
                     readouts=EvalConfig.readouts, check=CheckConfig())
    p.add_argument("--table", choices=("cifar10",), default=None,
                   help="print the seed's CIFAR-10 table (CNN, CNN-F last/avg; clean, PGD and "
                        "SPSA first/e2e, transfer, min) instead of the ε sweep; --models "
                        f"defaults to {','.join(TABLE_MODELS)}")
    p.add_argument("--table-spsa-samples", type=int, default=TableConfig.spsa_samples,
                   help="SPSA samples per gradient estimate in the table (seed: 128)")
    p.add_argument("--table-spsa-steps", type=int, default=TableConfig.spsa_steps,
                   help="SPSA Adam steps in the table (seed: 7)")
    add_corruption_arguments(p)  # dgm eval --corruptions ...
    p.set_defaults(func=run)


DATASETS = {"fashion-mnist": ("Fashion-MNIST", load_fashion_mnist),
            "cifar10": ("CIFAR-10", load_cifar10)}


def test_subset(dataset: str, n: int, seed: int, data_dir=None
                ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """The seeded test subset of ``dataset``: ``(x (n, C, H, W), y (n,), indices into the test
    set)``; for CIFAR-10 the same images as ``--table cifar10`` with the same n and seed."""
    x, y = DATASETS[dataset][1]("test", data_dir)
    idx = fixed_subset(len(y), n, seed)
    return torch.from_numpy(x[idx]), torch.from_numpy(y[idx]), idx


def evaluate_from_args(args, models: dict, header: dict) -> int:
    """Run the evaluation described by the common options on ``models``."""
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = getattr(args, "dataset", "fashion-mnist")
    x, y, idx = test_subset(dataset, args.n_examples, args.seed, args.data_dir)
    cnn = next((m for m, net in models.items() if net.is_cnn), None)
    attacks = tuple(a for a in args.attacks if a != "transfer" or cnn is not None)
    stray = [a for a in args.cascade if a not in attacks[1:] and a not in CASCADE_DEFAULT]
    if stray:
        raise ConfigError(f"--cascade {','.join(stray)}: a cascaded attack must be one of "
                          f"--attacks after the first ({', '.join(attacks[1:])})")
    config = EvalConfig(eps=args.eps, attacks=attacks, readouts=args.readouts,
                        cascade=tuple(a for a in args.cascade if a in attacks[1:]),
                        steps=args.steps, step_scale=args.step_scale, restarts=args.restarts,
                        apgd_steps=args.apgd_steps, apgd_restarts=args.apgd_restarts,
                        batch_size=args.batch_size, seed=args.seed, transfer_from=cnn)
    check = None if args.no_checks else CheckConfig(
        n=args.check_n, large_steps=args.large_steps, restarts=args.check_restarts,
        spsa_n=args.spsa_n, spsa_samples=args.spsa_samples, spsa_steps=args.spsa_steps,
        saturation_n=args.saturation_n, saturation_eps=args.saturation_eps)
    print(f"evaluating {', '.join(models)} on {len(y)} {DATASETS[dataset][0]} test images "
          f"(seed {args.seed}); eps (pixel units) = {', '.join(f'{e:g}' for e in args.eps)}; "
          f"attacks = {', '.join(attacks)}; PGD-{args.steps}, {args.restarts} restart(s); "
          f"APGD-{args.apgd_steps}, {args.apgd_restarts} restart(s)",
          flush=True)
    header = dict(header, dataset=dataset, subset_seed=args.seed,
                  subset_indices=idx.tolist(), eps_pixel=list(args.eps),
                  cards={m: getattr(net, "card", {}).get("sha256") for m, net in models.items()})
    start = time.perf_counter()
    run_evaluation(models, x, y, config, args.out, check=check, header=header,
                   strip_n=args.strip_n, progress=args.progress, resume=args.resume,
                   overwrite=args.overwrite)
    print(f"done in {time.perf_counter() - start:.0f} s ({torch.get_num_threads()} threads); "
          f"{len(y)} images, eps = {', '.join(f'{e:g}' for e in args.eps)}; "
          f"outputs in {args.out}")
    return 0


def run(args) -> int:
    if getattr(args, "table", None):
        return run_table(args)
    if args.corruptions:
        return run_corruptions(args)
    check_writable(args.out, "--out")           # before any work
    specs = _dataset_models(args)
    models = load_models(specs, args.untrained)
    return evaluate_from_args(args, models, dict(command="eval", models_spec=list(specs),
                                                 untrained=args.untrained))


def _dataset_models(args) -> list[str]:
    """``--models``; on CIFAR-10 the default (the Fashion-MNIST pair) means ``TABLE_MODELS``."""
    cifar = args.dataset == "cifar10" or getattr(args, "table", None)
    return list(TABLE_MODELS if cifar and set(args.models) <= {"fashion_cnn", "fashion_cnnf"}
                else args.models)


def run_table(args) -> int:
    """``dgm eval --table cifar10``: build the models, run ``seed_table``, print + write it.
    Options used: ``--models`` (default ``TABLE_MODELS``), ``--n-examples``, ``--out``,
    ``--batch-size``, ``--seed``, ``--untrained``, ``--threads``, ``--data-dir``."""
    if args.threads:
        torch.set_num_threads(args.threads)
    specs = _dataset_models(args)
    models = load_models(specs, args.untrained)
    x_all, y_all = load_cifar10("test", args.data_dir)
    cnns = [m for m, net in models.items() if net.is_cnn]
    cnnfs = [m for m, net in models.items() if not net.is_cnn]
    if len(cnns) != 1 or len(cnnfs) != 1:
        raise ConfigError(f"--table needs one CNN (0 cycles) and one CNN-F, got {list(models)}")
    idx = fixed_subset(len(y_all), args.n_examples, args.seed)
    x, y = torch.from_numpy(x_all[idx]), torch.from_numpy(y_all[idx])
    config = TableConfig(spsa_samples=args.table_spsa_samples, spsa_steps=args.table_spsa_steps,
                         batch_size=args.batch_size, seed=args.seed)
    print(f"CIFAR-10 table: CNN = {cnns[0]}, CNN-F = {cnnfs[0]}, {len(y)} test images",
          flush=True)
    rows = seed_table(models[cnns[0]], models[cnnfs[0]], x, y, config,
                      log=lambda s: print(s, flush=True))
    meta = {"models": list(specs), "untrained": args.untrained, "subset_indices": idx.tolist(),
            "cards": {m: getattr(net, "card", {}).get("sha256") for m, net in models.items()}}
    print(write_table(rows, args.out, config, meta))
    return 0
