"""``dgm diagnose MODEL``: likelihood diagnostics of inference on real images (issue 6).

Runs the exact alternating MAP and CNN-F's heuristics on clean and PGD-perturbed ("first"
pass) test images, records the log joint and its per-term breakdown after every single step,
and writes ``steps.jsonl``, ``runs.jsonl``, ``summary.json``, ``summary.md`` and figures to
``--out`` (see ``zoo.diagnostics``). It also measures the test log joint per dimension,
log p_B(x̃, h, y, z, t) / D and each of its terms (``zoo.evaluation.generative.
log_joint_per_dim``), on the clean images for every variant, at the engine's state after
``--log-joint-cycles`` cycles with y = the label (with ``--tau2 inf``, at h = x̃: the number of
the generative models' cards); printed, and in ``summary.json`` / ``summary.md``.

MODEL is a registered name (``fashion_cnnf``, ``fashion_cnnf.exact``: the hub's weights when
present) or ``package.module:factory`` (a function returning a ``CNNF``). Weights:
``--checkpoint`` (a ``.safetensors`` export or a training checkpoint ``.pt``), else the hub's,
else (or with ``--untrained``) a seeded random initialisation, which the summary says.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import time
from pathlib import Path

from inference import PRESETS

from ._args import names

_DTYPES = ("float32", "float64")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("diagnose", help="log joint per inference step, figures",
                              description=__doc__.splitlines()[0])
    p.add_argument("model", help="registry name or package.module:factory")
    p.add_argument("--checkpoint", default=None,
                   help="weights: .safetensors export or training checkpoint .pt")
    p.add_argument("--untrained", action="store_true", help="seeded random weights")
    p.add_argument("--data", choices=("fashion-mnist", "synthetic"), default="fashion-mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--n-images", type=int, default=256, help="test images (the first ones)")
    p.add_argument("--offset", type=int, default=0, help="index of the first test image")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--tau2", type=float, default=None,
                   help="observation noise τ² (default σ²/9: the exact h-step equals CNN-F's "
                        "first update; 'inf' drops the observation term)")
    p.add_argument("--variants", type=names, default=("exact", "original"),
                   help="comma separated engine presets: " + ", ".join(PRESETS))
    p.add_argument("--conditions", type=names, default=("clean", "pgd"),
                   help="comma separated: clean, pgd")
    p.add_argument("--cycles", type=int, default=5,
                   help="maximum cycles (each batch stops at a fixed point)")
    p.add_argument("--eps", type=float, default=0.1, help="PGD L∞ budget in [0, 1] pixel units")
    p.add_argument("--pgd-steps", type=int, default=7)
    p.add_argument("--step-scale", type=float, default=2.5, help="PGD step = scale · ε / steps")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--dtype", choices=_DTYPES, default="float64",
                   help="float64 (default) resolves small decreases (tolerance dgm-math §4.6: "
                        "rtol 1e-10; float32: 1e-4, about 2.5x faster, misses small ones)")
    p.add_argument("--log-joint-cycles", type=int, default=0,
                   help="cycles of the engine before the test log joint per dimension is scored "
                        "(0: the plain pass's state with y = the label, as the cards)")
    p.add_argument("--strip-n", type=int, default=6, help="images in the repair strips")
    p.add_argument("--seed", type=int, default=0, help="PGD random starts, synthetic data")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    p.set_defaults(func=run)


def load_net(model: str, checkpoint: str | None, untrained: bool):
    """(CNNF module, where its weights came from): the hub's ``create_model`` for registered
    names and ``.safetensors`` files, ``zoo.training.load_trained`` for training checkpoints."""
    from zoo.models import create_model, hub
    from zoo.training import load_trained
    if ":" in model:
        module, factory = model.split(":", 1)
        net = getattr(importlib.import_module(module), factory)()
        if checkpoint:
            return load_trained(checkpoint, net), checkpoint
        return net, "factory init"
    if checkpoint and checkpoint.endswith(".safetensors"):
        return create_model(model, pretrained=checkpoint), checkpoint
    if checkpoint:
        return load_trained(checkpoint, create_model(model)), checkpoint
    if not untrained and hub.has_weights(model):
        return create_model(model, pretrained=True), "bundled weights"
    return create_model(model), "random init (untrained)"


def load_data(args, input_shape, classes: int):
    import numpy as np
    if args.data == "synthetic":
        rng = np.random.default_rng(args.seed)
        x = rng.uniform(-1, 1, (args.n_images, *input_shape)).astype(np.float32)
        return x, rng.integers(0, classes, args.n_images), None
    from zoo.data import FASHION_MNIST_CLASSES, load_fashion_mnist
    x, y = load_fashion_mnist("test", args.data_dir)
    sl = slice(args.offset, args.offset + args.n_images)
    return x[sl], y[sl], FASHION_MNIST_CLASSES


def measure_log_joint(net, x, y, args, tau2: float, options) -> dict[str, float]:
    """``log_joint_per_dim`` of ``net`` on the clean images under ``options`` and ``tau2``;
    a model whose log joint the library cannot evaluate is a one-line error naming it."""
    from backends import ConfigError, DGMError
    from zoo.evaluation.generative import log_joint_per_dim
    try:
        return log_joint_per_dim(net, x, y, cycles=args.log_joint_cycles,
                                 batch_size=args.batch_size, tau2=tau2, options=options)
    except DGMError as err:
        raise ConfigError(f"{args.model}: the log joint per dimension is not defined at its "
                          f"feedback level ({err})") from err


def run(args: argparse.Namespace) -> int:
    import torch

    from backends import ConfigError
    from zoo.attacks import pixel_to_input
    from zoo.diagnostics import VARIANTS, diagnose, format_log_joint, format_summary, \
        with_noise, write_report
    from zoo.models import CNNF

    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    net, source = load_net(args.model, args.checkpoint, args.untrained)
    if not isinstance(net, CNNF):
        raise ConfigError(f"{args.model} is a {type(net).__name__}, not a DGM with its inference "
                          f"(zoo.models.CNNF): it has no log joint to diagnose")
    dgm = net.dgm
    tau2 = dgm.sigma2 / 9 if args.tau2 is None else args.tau2
    model = with_noise(dgm, tau2)
    dtype = getattr(torch, args.dtype)
    net = net.to(dtype)
    params = {k: v.detach() for k, v in net.params().items()}
    x, y, class_names = load_data(args, model.input_shape, model.classes)
    x = torch.as_tensor(x, dtype=dtype)
    y = torch.as_tensor(y, dtype=torch.int64)
    eps = pixel_to_input(args.eps)
    diagnosis = diagnose(model, params, x, y, variants=args.variants,
                         conditions=args.conditions, cycles=args.cycles,
                         batch_size=args.batch_size, eps=eps,
                         step_size=args.step_scale * eps / max(args.pgd_steps, 1),
                         pgd_steps=args.pgd_steps, seed=args.seed,
                         keep_examples=args.strip_n, progress=args.progress)
    log_joint = {"cycles": args.log_joint_cycles, "tau2": tau2, "images": len(x),
                 "per_dim": {v: measure_log_joint(net, x, y, args, tau2, VARIANTS[v])
                             for v in args.variants}}
    meta = {"model": args.model, "weights": source, "data": args.data, "offset": args.offset,
            "eps_pixel": args.eps, "command": "dgm " + " ".join(sys.argv[1:]),
            "threads": torch.get_num_threads(), "torch": torch.__version__}
    if math.isinf(tau2):
        meta["warning"] = "tau2 = inf: the objective does not depend on x (dgm-math §3.1)"
    write_report(diagnosis, args.out, model=model, params=params, x=x, labels=y, meta=meta,
                 class_names=class_names, log_joint=log_joint)
    print(format_summary(diagnosis.summary))
    print(format_log_joint(log_joint["per_dim"], cycles=args.log_joint_cycles, tau2=tau2,
                           images=len(x)))
    print(json.dumps({"out": str(Path(args.out)), "images": len(x), "weights": source,
                      "diagnose_s": round(diagnosis.seconds, 1),
                      "diagnose_cpu_s": round(diagnosis.cpu_seconds, 1),
                      "total_s": round(time.perf_counter() - start, 1)}))
    return 0
