"""Effect primitives for writing the DGM as a probabilistic program: ``sample``, ``factor`` and the
handler stack that interprets them (the minipyro / numpyro design, backend-generic).

Requirements: never imports torch. A primitive computes nothing itself: it builds a *message*
(a dict) and hands it to the active handlers (``apply_stack``). Interpreters (``dgm.handlers``:
trace, condition, seed, log density; ``dgm.pyro_adapter``: Pyro) are ``Messenger`` subclasses that
read or write the message. Every site's value has a leading batch axis N; a distribution's
``log_prob`` returns one value per example, shape (N,) (the batch is an implicit plate).

A message has the keys ``type`` ("sample"), ``name``, ``fn`` (the distribution), ``value``
(None until a handler or the default draw sets it), ``is_observed``, ``rng`` (set by ``seed``)
and ``stop`` (set by a handler to hide the message from the handlers outside it).
"""
from __future__ import annotations

from typing import Any, Callable

from backends import DGMError

from .distributions import Distribution, Factor

# The active handlers, outermost first. Only Messenger.__enter__/__exit__ change it.
_STACK: list["Messenger"] = []


class Messenger:
    """Base handler: a wrapper, a decorator and a context manager.

    ``Messenger(fn)(*args)`` runs ``fn`` with the handler active; ``Messenger()`` used as
    ``@handler`` on a function wraps it; ``with Messenger(): ...`` activates it for a block.
    ``__exit__`` removes this handler and every handler entered after it, also when the model
    raises, so an exception never leaves the stack dirty.
    """

    def __init__(self, fn: Callable | None = None):
        self.fn = fn

    def __enter__(self) -> "Messenger":
        _STACK.append(self)
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        if self in _STACK:
            del _STACK[_STACK.index(self):]

    def __call__(self, *args, **kwargs) -> Any:
        if self.fn is None:  # used as a decorator: @handler(...) def model(...)
            if len(args) != 1 or kwargs or not callable(args[0]):
                raise TypeError(f"{type(self).__name__} without fn is a decorator: pass a single "
                                f"function, got {len(args)} positional and {len(kwargs)} keyword "
                                f"arguments")
            self.fn = args[0]
            return self
        with self:
            return self.fn(*args, **kwargs)

    def process_message(self, msg: dict) -> None:
        """Called on the way in (innermost handler first)."""

    def postprocess_message(self, msg: dict) -> None:
        """Called on the way out (outermost handler last), after the value is set."""


def apply_stack(msg: dict) -> dict:
    """Run ``msg`` through the handler stack and return it with ``value`` set.

    Order: ``process_message`` from the innermost (most recently entered) handler outwards,
    stopping early after a handler that sets ``msg["stop"]``; then the default — draw from
    ``msg["fn"]`` with ``msg["rng"]`` when no handler set a value; then ``postprocess_message``
    on the same handlers in reverse order (outermost of those reached ... innermost).
    """
    reached = 0  # how many handlers (counted from the innermost) saw the message
    for handler in reversed(_STACK):
        reached += 1
        handler.process_message(msg)
        if msg["stop"]:
            break
    if msg["value"] is None:
        msg["value"] = _default_draw(msg)
    for handler in _STACK[len(_STACK) - reached:]:
        handler.postprocess_message(msg)
    return msg


def _default_draw(msg: dict) -> Any:
    if msg["rng"] is None:
        raise _no_value(msg["name"])
    return msg["fn"].sample(msg["rng"])


def _no_value(name: str) -> DGMError:
    return DGMError(f"site {name!r} has no value and no random generator: condition on it or run "
                    f"the program under dgm.handlers.seed(...)")


def sample(name: str, fn: Distribution, obs: Any = None) -> Any:
    """A random site ``name`` with distribution ``fn``; ``obs`` makes it observed.

    Without handlers: returns ``obs`` (a draw needs ``dgm.handlers.seed``). Otherwise the value
    the handler stack settles on (conditioned, drawn, or substituted by an interpreter).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"sample: name must be a non-empty str, got {name!r}")
    if not isinstance(fn, Distribution):
        raise TypeError(f"sample {name!r}: fn must be a dgm.distributions.Distribution, "
                        f"got {type(fn).__name__}")
    if not _STACK:
        if obs is None:
            raise _no_value(name)
        return obs
    msg = {"type": "sample", "name": name, "fn": fn, "value": obs, "is_observed": obs is not None,
           "rng": None, "stop": False}
    return apply_stack(msg)["value"]


def factor(name: str, log_factor: Any) -> None:
    """Add ``log_factor`` (N,) to the program's log density as the observed site ``name``."""
    fn = Factor(log_factor)
    sample(name, fn, obs=fn.empty_value())
