"""Options and argument types shared by several ``dgm`` subcommands."""
from __future__ import annotations

import argparse
import math
from typing import Sequence

from backends import ConfigError
from zoo.evaluation import CheckConfig, EvalConfig

_EVAL = EvalConfig()
CASCADE_DEFAULT = ("apgd-sum", "apgd-dlr")   # each dropped without a word when not run


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
                   help="comma separated: first, e2e, e2e-sum, bpda, apgd-sum, apgd-dlr, transfer "
                        "(apgd-dlr: APGD on the sum over passes of the scale-free DLR loss, "
                        "which keeps its gradient where the softmax saturates)")
    p.add_argument("--readouts", type=names, default=tuple(readouts),
                   help="scored readouts of CNN-F models: last, avg")
    p.add_argument("--steps", type=int, default=_EVAL.steps, help="PGD steps")
    p.add_argument("--step-scale", type=float, default=_EVAL.step_scale,
                   help="PGD step = step_scale · ε / steps")
    p.add_argument("--restarts", type=int, default=_EVAL.restarts, help="PGD restarts")
    p.add_argument("--apgd-steps", type=int, default=_EVAL.apgd_steps,
                   help="iterations of the strong attacks apgd-sum and apgd-dlr (APGD on the sum "
                        "over passes of CE / DLR)")
    p.add_argument("--apgd-restarts", type=int, default=apgd_restarts,
                   help="restarts of apgd-sum and apgd-dlr (each on the images not yet broken)")
    p.add_argument("--cascade", type=names, default=CASCADE_DEFAULT,
                   help="attacks run only on images every earlier attack left correct "
                        "(AutoAttack-style; the min column is the same worst case; such a column "
                        "is the worst case so far), e.g. e2e-sum,bpda,apgd-sum,apgd-dlr")
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
                   help="saturation check: the strongest attacks (apgd-sum, apgd-dlr) with 2× "
                        "steps and restarts, one after the other, on the survivors among the "
                        "first N images (0 skips it)")
    p.add_argument("--saturation-eps", type=floats, default=check.saturation_eps,
                   help="budgets of the saturation check (default: every ε > 0)")
    p.add_argument("--no-checks", action="store_true", help="skip the gradient-masking checks")
    p.add_argument("--strip-n", type=int, default=6,
                   help="images in the repair strips (one per class first, in subset order)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    runs = p.add_mutually_exclusive_group()
    runs.add_argument("--resume", action="store_true",
                      help="finish the evaluation in --out: its finished cells (cells.jsonl) "
                           "are kept, only the others are computed")
    runs.add_argument("--overwrite", action="store_true",
                      help="replace an evaluation already in --out")


def add_model_options(p: argparse.ArgumentParser, default: Sequence[str]) -> None:
    """``--models`` (``[LABEL:]NAME[.TAG][@CYCLES][=WEIGHTS_PATH]``, see :func:`load_models`)
    and ``--untrained``."""
    p.add_argument("--models", type=names, default=tuple(default),
                   help="comma separated [LABEL:]NAME[.TAG][@CYCLES][=WEIGHTS_PATH] (@CYCLES: "
                        "run the weights with that many feedback cycles)")
    p.add_argument("--untrained", action="store_true",
                   help="seeded random weights instead of pretrained ones (pipeline check)")


def load_models(specs: Sequence[str], untrained: bool = False) -> dict:
    """``[LABEL:]NAME[.TAG][@CYCLES][=WEIGHTS]`` -> {label: model} through the hub's
    ``zoo.models.create_model`` (the label defaults to NAME[.TAG][@CYCLES]; WEIGHTS defaults to
    the hub's weights of NAME[.TAG]; ``@CYCLES`` overrides the card's feedback cycles, e.g.
    ``fashion_dgm@5``: the bundled 0-cycle weights run with 5 cycles)."""
    from zoo.models import create_model
    out = {}
    for spec in specs:
        head, _, path = spec.partition("=")
        label, _, name = head.rpartition(":")
        label = label or name
        name, at, cycles = name.partition("@")
        if at and not (cycles.isdigit() and cycles.isascii()):
            raise ConfigError(f"--models {spec!r}: @CYCLES must be an integer >= 0, got "
                              f"{cycles!r}")
        if label in out:
            raise ConfigError(f"--models: label {label!r} given twice; use LABEL:NAME=WEIGHTS")
        out[label] = create_model(name, pretrained=False if untrained else (path or True),
                                  **({"cycles": int(cycles)} if at else {}))
    return out


# -- every option checked when the command line is read (issue 16) -----------------------------
# dest -> (low, high, low excluded, high excluded) for int/float options; any other int option
# must be >= 0 and any other float option finite and >= 0. Lists of budgets and of names are
# checked element-wise (``LIST_RANGES``, ``KNOWN_NAMES``).
INF = math.inf
RANGES: dict[str, tuple[float, float, bool, bool]] = {
    **{d: (1, INF, False, False) for d in (
        "n_examples", "steps", "restarts", "apgd_steps", "apgd_restarts", "batch_size",
        "check_n", "spsa_samples", "spsa_steps", "check_restarts", "large_steps", "strip_n",
        "threads", "repeats", "n_images", "pgd_steps", "val_size", "val_limit", "limit_train",
        "labels_per_class", "labelled_batch", "table_spsa_samples", "table_spsa_steps", "max_cycles")},
    **{d: (0, INF, True, False) for d in ("step_scale", "epochs", "grad_clip", "sigma2")},
    "tau2": (0, INF, True, False),          # inf allowed: no observation noise
    "momentum": (0, 1, False, True),
    "eps": (0, 2, False, False),            # input units ([-1, 1] spans 2)
}
ALLOW_INF = ("tau2",)
LIST_RANGES = {"eps": (0.0, 1.0), "saturation_eps": (0.0, 1.0)}   # pixel units


def _known_names() -> dict[str, tuple[str, ...]]:
    from inference import PRESETS
    from zoo.diagnostics import CONDITIONS
    from zoo.evaluation import ATTACKS
    from zoo.training.loop import CONFIG_FIELDS
    return {"attacks": tuple(ATTACKS), "cascade": tuple(ATTACKS), "readouts": ("last", "avg"),
            "variants": tuple(PRESETS), "conditions": CONDITIONS,
            "allow_change": tuple(f.replace("_", "-") for f in CONFIG_FIELDS)
            + tuple(CONFIG_FIELDS)}


def _number_type(dest: str, kind: type):
    low, high, low_open, high_open = RANGES.get(dest, (0, INF, False, False))
    what = "an integer" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if kind is float and (math.isnan(value) or (math.isinf(value) and dest not in ALLOW_INF)):
            raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
        if value < low or value > high or (low_open and value == low) or \
                (high_open and value == high):
            lo, hi = "(" if low_open else "[", ")" if high_open or high == INF else "]"
            raise argparse.ArgumentTypeError(f"must be in {lo}{low:g}, {high:g}{hi}, got {text}")
        return value
    return parse


def _list_type(dest: str, inner):
    low, high = LIST_RANGES[dest]

    def parse(text: str):
        values = inner(text)
        bad = [v for v in values if not (math.isfinite(v) and low <= v <= high)]
        if bad or not values:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated numbers in [{low:g}, {high:g}] (pixel units), "
                f"got {text!r}")
        return values
    return parse


def _names_type(dest: str, known: tuple[str, ...]):
    def parse(text: str):
        values = names(text)
        bad = [v for v in values if v not in known]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(map(repr, bad))}; known: "
                                             f"{', '.join(dict.fromkeys(known))}")
        return values
    return parse


def check_every_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give every int/float/list option of ``parser`` and its subcommands a checked type
    (``RANGES``, ``LIST_RANGES``, known names), so a bad value is an argparse error (one line,
    exit 2) before any work; returns ``parser``."""
    known = _known_names()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                check_every_option(sub)
        elif action.type in (int, float):
            action.type = _number_type(action.dest, action.type)
        elif action.type is floats and action.dest in LIST_RANGES:
            action.type = _list_type(action.dest, floats)
        elif action.type is not None and action.dest in known:
            action.type = _names_type(action.dest, known[action.dest])
    return parser
