"""``dgm train DATASET``: train a CNN / CNN-F (clean or adversarial recipe) and export it.

Datasets are the registered recipes (``zoo.training.recipes``: ``fashion-mnist``,
``fashion-mnist-pixel``, ``cifar10`` (WRN-40-2), ``cifar10-wrn16`` (WRN-16-2)). ``--mode`` is an
engine preset (``inference.PRESETS``). ``--resume`` continues ``<out>/last.pt`` bit-identically; a complete
run resumed with ``--export PREFIX`` writes ``PREFIX.safetensors`` + ``PREFIX.json`` (model
card) from the best-validation checkpoint.
"""
from __future__ import annotations

import argparse
import json
import shlex

from inference import PRESETS
from zoo.training import RECIPES, TrainConfig
from zoo.training.objectives import OBJECTIVES, UNLABELLED

_DEFAULTS = TrainConfig()
_PARSER: list[argparse.ArgumentParser] = []   # the subparser, to spell out a run's command


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a CNN / CNN-F and export weights + model card",
                              description=__doc__.splitlines()[0])
    p.add_argument("dataset", choices=sorted(RECIPES))
    p.add_argument("--out", default=_DEFAULTS.out, help="run directory (log, checkpoints)")
    p.add_argument("--cycles", type=int, default=_DEFAULTS.cycles, help="0 = the CNN")
    p.add_argument("--ind", type=int, default=_DEFAULTS.ind, help="feedback level")
    p.add_argument("--norm", choices=("none", "frozen", "original"), default=_DEFAULTS.norm)
    p.add_argument("--mode", choices=tuple(PRESETS), default=_DEFAULTS.mode,
                   help="engine preset (inference.PRESETS)")
    p.add_argument("--readout", choices=("last", "avg"), default=_DEFAULTS.readout)
    p.add_argument("--head", choices=("adjoint", "nearest"), default=_DEFAULTS.head,
                   help="WRN head feedback: the exact adjoint of the average pool (default) or "
                        "the original's nearest upsampling (faithful mode)")
    p.add_argument("--channels-last", action="store_true",
                   help="channels-last memory format for the model and batches (GPU)")
    p.add_argument("--epochs", type=float, default=_DEFAULTS.epochs, help="may be fractional")
    p.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size)
    p.add_argument("--lr", type=float, default=_DEFAULTS.lr)
    p.add_argument("--momentum", type=float, default=_DEFAULTS.momentum)
    p.add_argument("--weight-decay", type=float, default=_DEFAULTS.weight_decay)
    p.add_argument("--grad-clip", type=float, default=_DEFAULTS.grad_clip)
    p.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    p.add_argument("--val-size", type=int, default=None, help="held-out training images")
    p.add_argument("--val-limit", type=int, default=None, help="validate on the first N only")
    p.add_argument("--limit-train", type=int, default=None, metavar="N")
    p.add_argument("--adversarial", action="store_true", help="CNN-F's PGD-7 recipe")
    p.add_argument("--eps", type=float, default=None, help="PGD radius, input units [-1, 1]")
    p.add_argument("--pgd-steps", type=int, default=_DEFAULTS.pgd_steps)
    p.add_argument("--pgd-step-size", type=float, default=None)
    p.add_argument("--clean-weight", type=float, default=None, help="λ_c")
    p.add_argument("--mse-weight", type=float, default=_DEFAULTS.mse_weight, help="λ_r")
    p.add_argument("--objective", choices=OBJECTIVES[:3], default=_DEFAULTS.objective,
                   help="ce: cross-entropy at every pass; generative: hard EM on "
                        "-log p_B(x,h,y,z,t)/D; hybrid: ce + --gen-weight * generative")
    p.add_argument("--gen-weight", type=float, default=_DEFAULTS.gen_weight,
                   help="lambda, the generative term's weight")
    p.add_argument("--estep-cycles", type=int, default=_DEFAULTS.estep_cycles,
                   help="engine cycles of the generative term's E-step")
    p.add_argument("--unlabelled", choices=UNLABELLED, default=_DEFAULTS.unlabelled,
                   help="class of unlabelled images: map (the engine's), lse (marginalised) or "
                        "elbo (the network's posterior q, the bound E_q log p_B + H(q))")
    p.add_argument("--labels-per-class", type=int, default=None, metavar="N",
                   help="semi-supervised: keep N labels per class, the rest unlabelled")
    p.add_argument("--labelled-batch", type=int, default=None, metavar="L",
                   help="with --labels-per-class: every batch holds L labelled images and "
                        "batch-size - L unlabelled ones (an epoch = one pass over the "
                        "unlabelled); L = --batch-size trains on the labelled images alone")
    p.add_argument("--learn-sigma2", action="store_true",
                   help="sigma^2 follows its closed-form ML estimate (generative term)")
    p.add_argument("--sigma2", type=float, default=_DEFAULTS.sigma2,
                   help="initial sigma^2 (fashion-mnist-pixel)")
    p.add_argument("--tau2", type=float, default=_DEFAULTS.tau2,
                   help="observation noise tau^2, inf = none (fashion-mnist-pixel)")
    p.add_argument("--width", type=int, default=_DEFAULTS.width,
                   help="conv channel multiplier (fashion-mnist-pixel)")
    p.add_argument("--dense-width", type=int, default=_DEFAULTS.dense_width,
                   help="units of the dense layer (fashion-mnist-pixel)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default=_DEFAULTS.optimizer)
    p.add_argument("--eval-every", type=int, default=0, metavar="STEPS",
                   help="also validate every STEPS steps (always at each epoch end)")
    p.add_argument("--checkpoint-minutes", type=float, default=_DEFAULTS.checkpoint_minutes)
    p.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                   help="warm start; needed for --mode exact with --cycles > 0, which stalls "
                        "at chance from scratch (train the CNN first with --cycles 0)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--test", action="store_true",
                   help="when done, report the best checkpoint's test accuracy (never used "
                        "for selection)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out (its stored options must match)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (its log, checkpoints, summary)")
    p.add_argument("--allow-change", type=lambda text: tuple(w.strip() for w in text.split(",")
                                                              if w.strip()),
                   default=(), metavar="OPTIONS",
                   help="with --resume: comma-separated options allowed to differ from the "
                        "stored run's, e.g. epochs,lr")
    p.add_argument("--export", default=None, metavar="PREFIX",
                   help="write PREFIX.safetensors + PREFIX.json from the best checkpoint")
    p.add_argument("--name", default=None, help="registry name written into the card")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    p.set_defaults(func=run)
    _PARSER[:] = [p]


def _command(args: argparse.Namespace) -> str:
    """The ``dgm train`` command line equivalent to ``args`` (options that differ from their
    defaults, in the parser's order)."""
    words = ["dgm", "train", args.dataset]
    for action in _PARSER[0]._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS or \
                action.dest in ("help", "debug"):
            continue
        value = getattr(args, action.dest)
        if value == action.default:
            continue
        flag = action.option_strings[0]
        if isinstance(value, bool):
            words.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, tuple):
            words += [flag, ",".join(map(str, value))]
        else:
            words += [flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)


def run(args: argparse.Namespace) -> int:
    import torch

    from zoo.training import train
    from zoo.training.loop import CONFIG_FIELDS

    if args.threads:
        torch.set_num_threads(args.threads)
    values = {k: getattr(args, k) for k in CONFIG_FIELDS if hasattr(args, k)}
    values["command"] = _command(args)
    summary = train(TrainConfig(**values), resume=args.resume, overwrite=args.overwrite,
                    allow_changes=tuple(o.replace("-", "_") for o in args.allow_change),
                    progress=args.progress)
    if args.export:
        from zoo.training.export import export_run
        sha = export_run(args.out, args.export, name=args.name)
        summary["sha256"] = sha
    print(json.dumps({k: summary[k] for k in ("steps", "wall_s", "best_step", "val", "test",
                                              "sha256") if k in summary}))
    return 0
