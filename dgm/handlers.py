"""Interpreters of a program written with ``dgm.primitives.sample``: trace, condition, seed and the
log density (minipyro style: each handler only reads or writes the message).

Requirements: never imports torch. Every handler is a wrapper, a decorator and a context manager::

    tr = trace(seed(model, seed=0)).get_trace(*args)          # wrapper
    @condition(data={"y": y})                                  # decorator
    def conditioned(*args): return model(*args)
    with trace() as tr, seed(seed=0):                          # context manager
        model(*args)

The log density is "trace, then sum the ``log_prob`` of every site": ``log_density(model, args,
kwargs, data)`` returns the per-example total (N,) and the trace.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Mapping

from backends import DGMError

from .primitives import Messenger


class Trace(OrderedDict):
    """Site name → message (``fn``, ``value``, ``is_observed``), in program order."""

    def log_probs(self) -> "OrderedDict[str, Any]":
        """Each site's log mass/density of its value, shape (N,) (cached as ``msg["log_prob"]``)."""
        out = OrderedDict()
        for name, msg in self.items():
            if "log_prob" not in msg:
                msg["log_prob"] = msg["fn"].log_prob(msg["value"])
            out[name] = msg["log_prob"]
        return out

    def log_prob_sum(self) -> Any:
        """Σ over sites of ``log_probs``: the program's log density per example, shape (N,)."""
        values = list(self.log_probs().values())
        if not values:
            raise DGMError("the trace has no sites: run the program under trace first")
        return sum(values[1:], values[0])


class trace(Messenger):
    """Record every site. ``trace(fn).get_trace(*args)`` runs fn and returns the ``Trace``; as a
    context manager, ``with trace() as tr`` fills ``tr.trace``.

    Note: a site name may occur once per run; a repeated name raises DGMError.
    """

    def __enter__(self) -> "trace":
        self.trace = Trace()
        return super().__enter__()

    def postprocess_message(self, msg: dict) -> None:
        if msg["name"] in self.trace:
            raise DGMError(f"site {msg['name']!r} occurs twice in one run; names must be unique")
        self.trace[msg["name"]] = msg.copy()

    def get_trace(self, *args, **kwargs) -> Trace:
        self(*args, **kwargs)
        return self.trace


class condition(Messenger):
    """Fix the value of every site named in ``data`` (site name → array) and mark it observed."""

    def __init__(self, fn: Callable | None = None, data: Mapping[str, Any] | None = None):
        if not isinstance(data, Mapping):
            raise TypeError(f"condition: data must be a mapping from site names to values, "
                            f"got {type(data).__name__}")
        super().__init__(fn)
        self.data = data

    def process_message(self, msg: dict) -> None:
        if msg["name"] in self.data:
            msg["value"] = self.data[msg["name"]]
            msg["is_observed"] = True


class seed(Messenger):
    """Give unobserved sites an explicit random generator: exactly one of ``seed`` (an int; a fresh
    ``ops.rng(seed, …)`` on every entry, made from the first site's array type, dtype and device)
    or ``rng`` (a backend generator, advanced across runs).

    Note: with an int ``seed`` every run of the wrapped program repeats the same draws (that is
    what makes it reproducible); pass ``rng`` to get fresh draws on each run.
    """

    def __init__(self, fn: Callable | None = None, seed: int | None = None, rng: Any = None):
        if (seed is None) == (rng is None):
            raise ValueError("seed: pass exactly one of seed (an int) or rng (a backend generator)")
        if seed is not None and not isinstance(seed, int):
            raise TypeError(f"seed: seed must be an int, got {type(seed).__name__}")
        super().__init__(fn)
        self.seed, self.rng = seed, rng

    def __enter__(self) -> "seed":
        if self.seed is not None:
            self.rng = None  # made at the first site, where the backend and device are known
        return super().__enter__()

    def process_message(self, msg: dict) -> None:
        if self.rng is None:
            self.rng = msg["fn"].ops.rng(self.seed, msg["fn"].like)
        if msg["rng"] is None:
            msg["rng"] = self.rng


def log_density(model: Callable, args: tuple = (), kwargs: Mapping | None = None,
                data: Mapping[str, Any] | None = None) -> tuple[Any, Trace]:
    """Per-example log density (N,) of ``model(*args, **kwargs)`` with the sites in ``data`` fixed,
    and its trace. Sites not in ``data`` must be observed in the program (or a seed must be
    active outside, in which case their drawn values are scored)."""
    tr = trace(condition(model, data=data or {})).get_trace(*args, **(kwargs or {}))
    return tr.log_prob_sum(), tr
