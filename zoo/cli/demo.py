"""``dgm demo``: the main job -- evaluate the bundled Fashion-MNIST CNN and CNN-F (table + figures).

Runs on a fixed, seeded test subset and writes the table and figures in about 10 minutes on 2
CPU cores.

It is ``dgm eval`` with the bundled models (``fashion_cnn``, ``fashion_cnnf``) and a budget-sized
default: 64 images, ε ∈ {0, 0.03, 0.06} (pixel units), PGD-40 on the first / e2e / e2e-sum /
BPDA targets, APGD-100 (1 restart) on the sum over passes for the images those left correct,
plus transfer from the CNN, the "last" readout, small gradient-masking checks (saturation on
the first 16 images at ε = 0.06).
Cost: the 5-cycle CNN-F's e2e PGD-40 is 40 forward+backward passes through every cycle. With
the bundled models the whole demo took 288 CPU-seconds on one thread (64 images, ε = 0.03 and
0.06, all checks; 23 min of wall time at a 20 % CPU share on a machine shared with ~10 jobs);
untrained weights cost the same. The full 1,000-image evaluation is
``dgm eval fashion-mnist --n-examples 1000``.
"""
from __future__ import annotations


from zoo.data import load_fashion_mnist
from zoo.evaluation import ATTACKS, CheckConfig

from zoo._outdir import check_writable

from ._args import add_eval_options, load_models
from .eval import evaluate_from_args

MODELS = ("fashion_cnn", "fashion_cnnf")
DEMO_EPS = (0.0, 0.03, 0.06)
DEMO_CHECK = CheckConfig(n=16, large_steps=10, restarts=2, spsa_n=8, spsa_samples=32,
                         spsa_steps=5, saturation_n=16, saturation_eps=(0.06,))


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("demo", help="evaluate the bundled models (table + figures)",
                              description=__doc__.splitlines()[0])
    add_eval_options(p, out="out/demo", n_examples=64, eps=DEMO_EPS, attacks=ATTACKS,
                     readouts=("last",), check=DEMO_CHECK, apgd_restarts=1)
    p.set_defaults(func=run)


def run(args) -> int:
    check_writable(args.out, "--out")           # before any work
    load_fashion_mnist("test", args.data_dir)   # DataError: the demo needs the test set
    models = load_models(MODELS)
    print(f"dgm demo: {args.n_examples} test images, eps = "
          f"{', '.join(f'{e:g}' for e in args.eps)} (pixel units)", flush=True)
    return evaluate_from_args(args, models, dict(command="demo", models_spec=list(MODELS)))
