"""``dgm eval fashion-mnist``: robustness of registered models on a fixed, seeded test subset.

Every model is attacked with PGD on each target (first / e2e / e2e-sum / BPDA) plus a transfer
attack from the CNN, at every ε (pixel units; inputs live in [-1, 1], so input units are 2×);
the report gives accuracy vs ε with the per-image worst case (`min`), Wilson intervals, a
McNemar test CNN-F vs CNN, accuracy over feedback iterations, gradient-masking checks and
repair strips, written to ``--out`` as results.jsonl, table.md and PNG figures.

Models are ``NAME`` (registry name, bundled weights), ``NAME=PATH`` (weights file) or, with
``--untrained``, seeded random initialisations (for trying the pipeline only).
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

import numpy as np
import torch

from zoo.data import DataError, load_fashion_mnist
from zoo.evaluation import ATTACKS, CheckConfig, EvalConfig, fixed_subset, run_evaluation

_EVAL = EvalConfig()
_CHECK = CheckConfig()


def floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")


def names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def add_common(p: argparse.ArgumentParser, *, out: str | None, n_examples: int,
               eps: Sequence[float], attacks: Sequence[str], readouts: Sequence[str],
               check: CheckConfig, apgd_restarts: int = _EVAL.apgd_restarts) -> None:
    """Options shared by ``eval`` and ``demo`` (defaults differ)."""
    p.add_argument("--out", default=out, required=out is None, help="output directory")
    p.add_argument("--n-examples", type=int, default=n_examples, help="test images (subset)")
    p.add_argument("--eps", type=floats, default=tuple(eps),
                   help="L∞ budgets in [0, 1] pixel units, comma separated")
    p.add_argument("--attacks", type=names, default=tuple(attacks),
                   help="comma separated: first, e2e, e2e-sum, bpda, apgd-sum, transfer")
    p.add_argument("--readouts", type=names, default=tuple(readouts),
                   help="scored readouts of CNN-F models: last, avg")
    p.add_argument("--steps", type=int, default=_EVAL.steps, help="PGD steps")
    p.add_argument("--step-scale", type=float, default=_EVAL.step_scale,
                   help="PGD step = step_scale · ε / steps")
    p.add_argument("--restarts", type=int, default=_EVAL.restarts, help="PGD restarts")
    p.add_argument("--apgd-steps", type=int, default=_EVAL.apgd_steps,
                   help="iterations of the strong attack apgd-sum (APGD on the sum over passes)")
    p.add_argument("--apgd-restarts", type=int, default=apgd_restarts,
                   help="restarts of apgd-sum (each on the images not yet broken)")
    p.add_argument("--cascade", type=names, default=("apgd-sum",),
                   help="attacks run only on images every earlier attack left correct "
                        "(AutoAttack-style; the min column is the same worst case; such a column "
                        "is the worst case so far), e.g. e2e-sum,bpda,apgd-sum")
    p.add_argument("--batch-size", type=int, default=_EVAL.batch_size)
    p.add_argument("--seed", type=int, default=0, help="subset and random starts")
    p.add_argument("--check-n", type=int, default=check.n,
                   help="images for the gradient-masking checks")
    p.add_argument("--spsa-n", type=int, default=check.spsa_n,
                   help="images for the SPSA check (0 skips it)")
    p.add_argument("--spsa-samples", type=int, default=check.spsa_samples)
    p.add_argument("--spsa-steps", type=int, default=check.spsa_steps)
    p.add_argument("--check-restarts", type=int, default=check.restarts)
    p.add_argument("--large-steps", type=int, default=check.large_steps,
                   help="PGD steps of the large-ε check")
    p.add_argument("--saturation-n", type=int, default=check.saturation_n,
                   help="saturation check: the strongest attack with 2× steps and restarts on "
                        "the survivors among the first N images (0 skips it)")
    p.add_argument("--saturation-eps", type=floats, default=check.saturation_eps,
                   help="budgets of the saturation check (default: every ε > 0)")
    p.add_argument("--no-checks", action="store_true", help="skip the gradient-masking checks")
    p.add_argument("--strip-n", type=int, default=6, help="images in the repair strips")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("eval", help="robustness evaluation (PGD, BPDA, transfer, SPSA)",
                              description=__doc__.splitlines()[0])
    p.add_argument("dataset", nargs="?", default="fashion-mnist",
                   choices=("fashion-mnist", "cifar10"),
                   help="cifar10: with --corruptions or --table cifar10")
    p.add_argument("--models", type=names, default=("fashion_cnn", "fashion_cnnf"),
                   help="comma separated [LABEL:]NAME[=WEIGHTS_PATH]")
    p.add_argument("--untrained", action="store_true",
                   help="seeded random weights instead of pretrained ones (pipeline check)")
    add_common(p, out=None, n_examples=1000, eps=_EVAL.eps, attacks=ATTACKS,
               readouts=_EVAL.readouts, check=_CHECK)
    from zoo.evaluation.cifar10 import add_table_arguments  # dgm eval --table cifar10
    add_table_arguments(p)
    from .eval_corruptions import add_corruption_arguments  # dgm eval --corruptions ...
    add_corruption_arguments(p)
    p.set_defaults(func=run)


def load_models(specs: Sequence[str], untrained: bool = False) -> dict:
    """``[LABEL:]NAME[=WEIGHTS]`` -> {label: model} through ``zoo.registry.create_model``
    (the label defaults to NAME; WEIGHTS defaults to the registry's bundled file)."""
    from zoo.registry import create_model
    out = {}
    for spec in specs:
        head, _, path = spec.partition("=")
        label, _, name = head.rpartition(":")
        label = label or name
        if label in out:
            raise ValueError(f"--models: label {label!r} given twice; use LABEL:NAME=WEIGHTS")
        out[label] = create_model(name, pretrained=False if untrained else (path or True))
    return out


def fashion_subset(n: int, seed: int, data_dir=None) -> tuple[torch.Tensor, torch.Tensor,
                                                               np.ndarray]:
    """The seeded test subset: ``(x (n, 1, 28, 28), y (n,), indices into the test set)``."""
    x, y = load_fashion_mnist("test", data_dir)
    idx = fixed_subset(len(y), n, seed)
    return torch.from_numpy(x[idx]), torch.from_numpy(y[idx]), idx


def evaluate_from_args(args, models: dict, header: dict) -> int:
    """Run the evaluation described by the common options on ``models``."""
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        x, y, idx = fashion_subset(args.n_examples, args.seed, args.data_dir)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    cnn = next((m for m, net in models.items() if net.cycles == 0), None)
    attacks = tuple(a for a in args.attacks if a != "transfer" or cnn is not None)
    config = EvalConfig(eps=args.eps, attacks=attacks, readouts=args.readouts,
                        cascade=tuple(a for a in args.cascade if a in attacks[1:]),
                        steps=args.steps, step_scale=args.step_scale, restarts=args.restarts,
                        apgd_steps=args.apgd_steps, apgd_restarts=args.apgd_restarts,
                        batch_size=args.batch_size, seed=args.seed, transfer_from=cnn)
    check = None if args.no_checks else CheckConfig(
        n=args.check_n, large_steps=args.large_steps, restarts=args.check_restarts,
        spsa_n=args.spsa_n, spsa_samples=args.spsa_samples, spsa_steps=args.spsa_steps,
        saturation_n=args.saturation_n, saturation_eps=args.saturation_eps)
    print(f"evaluating {', '.join(models)} on {len(y)} Fashion-MNIST test images "
          f"(seed {args.seed}); eps (pixel units) = {', '.join(f'{e:g}' for e in args.eps)}; "
          f"attacks = {', '.join(attacks)}; PGD-{args.steps}, {args.restarts} restart(s); "
          f"APGD-{args.apgd_steps}, {args.apgd_restarts} restart(s)",
          flush=True)
    header = dict(header, dataset="fashion-mnist", subset_seed=args.seed,
                  subset_indices=idx.tolist(), eps_pixel=list(args.eps),
                  cards={m: getattr(net, "card", {}).get("sha256") for m, net in models.items()})
    start = time.perf_counter()
    run_evaluation(models, x, y, config, args.out, check=check, header=header,
                   strip_n=args.strip_n, progress=args.progress)
    print(f"done in {time.perf_counter() - start:.0f} s ({torch.get_num_threads()} threads); "
          f"{len(y)} images, eps = {', '.join(f'{e:g}' for e in args.eps)}; "
          f"outputs in {args.out}")
    return 0


def run(args) -> int:
    if getattr(args, "table", None):
        from zoo.evaluation.cifar10 import run_table
        return run_table(args)
    if args.corruptions:
        from .eval_corruptions import run_corruptions
        return run_corruptions(args)
    if args.dataset != "fashion-mnist":
        print(f"error: the ε sweep runs on fashion-mnist; for {args.dataset} use --corruptions "
              f"or --table cifar10", file=sys.stderr)
        return 2
    try:
        models = load_models(args.models, args.untrained)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return evaluate_from_args(args, models, dict(command="eval", models_spec=list(args.models),
                                                 untrained=args.untrained))
