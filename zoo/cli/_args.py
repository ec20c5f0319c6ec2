"""Options and argument types shared by several ``dgm`` subcommands."""
from __future__ import annotations

import argparse
from typing import Sequence

from zoo.evaluation import CheckConfig, EvalConfig

_EVAL = EvalConfig()


def floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")


def names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def add_eval_options(p: argparse.ArgumentParser, *, out: str | None, n_examples: int,
               eps: Sequence[float], attacks: Sequence[str], readouts: Sequence[str],
               check: CheckConfig, apgd_restarts: int = _EVAL.apgd_restarts) -> None:
    """Evaluation options shared by ``eval`` and ``demo`` (defaults differ)."""
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


def add_model_options(p: argparse.ArgumentParser, default: Sequence[str]) -> None:
    """``--models`` (``[LABEL:]NAME[.TAG][=WEIGHTS_PATH]``, see :func:`load_models`) and
    ``--untrained``."""
    p.add_argument("--models", type=names, default=tuple(default),
                   help="comma separated [LABEL:]NAME[.TAG][=WEIGHTS_PATH]")
    p.add_argument("--untrained", action="store_true",
                   help="seeded random weights instead of pretrained ones (pipeline check)")


def load_models(specs: Sequence[str], untrained: bool = False) -> dict:
    """``[LABEL:]NAME[.TAG][=WEIGHTS]`` -> {label: model} through the hub's
    ``zoo.models.create_model`` (the label defaults to NAME[.TAG]; WEIGHTS defaults to the
    hub's weights of NAME[.TAG])."""
    from zoo.models import create_model
    out = {}
    for spec in specs:
        head, _, path = spec.partition("=")
        label, _, name = head.rpartition(":")
        label = label or name
        if label in out:
            raise ValueError(f"--models: label {label!r} given twice; use LABEL:NAME=WEIGHTS")
        out[label] = create_model(name, pretrained=False if untrained else (path or True))
    return out
