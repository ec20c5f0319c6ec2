"""The DGM program as a Pyro model (torch): the same ``generative_program``, with every site sent
to ``pyro.sample`` / ``pyro.factor`` inside ``pyro.plate("batch")`` (ecosystem.md §1.1).

Requirements: importing this module never imports torch or pyro; both are imported inside the
functions. Each of our sites becomes one Pyro site of the same name with its event axes marked
(``.to_event``), so ``poutine.trace(model).get_trace(n).log_prob_sum()`` is the log joint of the
batch, and each site's ``log_prob`` has shape (N,):

==================================  ============================================================
ours                                Pyro
==================================  ============================================================
``Categorical(logits)``             ``Categorical(logits)``
``Bernoulli(u, leak α)`` (bool z)   ``Bernoulli(logits=(1 − α)·u).to_event`` (float 0/1 values)
``UniformPosition(k², like)``       ``Categorical(logits=0 (N, C, H', W', k²)).to_event(3)``
``Normal(loc, var)``                ``Normal(loc, √var).to_event``
``Factor(f)``                       ``pyro.factor(name, f)``
==================================  ============================================================

With α > 0, the Bernoulli with logit (1 − α)u has the same mass as ours (§1.3, leaky switch).
Use ``pyro_data`` to turn a ``State`` into Pyro's site values (switches as floats).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

from backends import DGMError

from .distributions import Bernoulli, Categorical, Factor, Normal, UniformPosition
from .model import DGM
from .primitives import Messenger
from .program import generative_program, program_data
from .state import State


def to_pyro(model: DGM, params: Mapping[str, Any], normalisation: str = "B", *,
            log_z: Any = None) -> Callable[..., tuple[State, Any]]:
    """A Pyro model ``fn(batch_size, norm_scales=None) -> (state, x_obs)`` running the DGM program
    with torch params (``norm_scales``: frozen norm scales, as ``state.norm_scales``).

    Args:
        params: torch tensors (e.g. float64), as from ``model.init("torch", ...)``.
        normalisation, log_z: as ``dgm.program.generative_program``.

    Note: condition, trace or replay the returned function with Pyro's handlers (``poutine``);
    every site is handed to Pyro at once, so ``dgm.handlers`` wrapped around it see no sites.

    Example:
        >>> from pyro import poutine
        >>> fn = to_pyro(model, params, "G", log_z=log_z)
        >>> tr = poutine.trace(poutine.condition(fn, data=pyro_data(model, state, x))).get_trace(n)
        >>> tr.log_prob_sum()   # == model.log_joint(...).total.sum()
    """
    import pyro

    ops, _ = model.check_params(params)
    if ops.name != "torch":
        raise TypeError(f"to_pyro: params must be torch tensors, got {ops.name} arrays")

    def pyro_model(batch_size: int, norm_scales: Mapping[str, Any] | None = None):
        with pyro.plate("batch", int(batch_size), dim=-1), _ToPyro():
            return generative_program(model, params, batch_size, normalisation=normalisation,
                                      log_z=log_z, norm_scales=norm_scales)

    return pyro_model


def pyro_data(model: DGM, state: State, x_obs: Any = None) -> dict[str, Any]:
    """``dgm.program.program_data`` with Pyro's value types: switches as floats 0/1."""
    data = program_data(model, state, x_obs)
    for path in model.switch_sites:
        data[f"z:{path}"] = state.z[path].to(state.h.dtype)
    return data


class _ToPyro(Messenger):
    """Innermost handler: hands each site to Pyro (which may condition, trace, replay it) and
    takes Pyro's value back; stops our stack there."""

    def process_message(self, msg: dict) -> None:
        import pyro

        fn, name = msg["fn"], msg["name"]
        if isinstance(fn, Factor):
            pyro.factor(name, fn.log_factor)
            msg["value"] = fn.empty_value()
        else:
            obs = msg["value"]
            if isinstance(fn, Bernoulli) and obs is not None:
                obs = obs.to(fn.like.dtype)
            value = pyro.sample(name, _pyro_distribution(fn), obs=obs)
            msg["value"] = value > 0.5 if isinstance(fn, Bernoulli) else value
        msg["stop"] = True


def _pyro_distribution(fn):
    import pyro.distributions as dist

    event = fn.like.ndim - 1
    if isinstance(fn, Categorical):
        return dist.Categorical(logits=fn.logits)
    if isinstance(fn, Bernoulli):
        return dist.Bernoulli(logits=fn.logits * (1 - fn.leak)).to_event(event)
    if isinstance(fn, UniformPosition):
        logits = fn.ops.zeros(fn.shape + (fn.kk,), fn.like)
        return dist.Categorical(logits=logits).to_event(event)
    if isinstance(fn, Normal):
        return dist.Normal(fn.loc, math.sqrt(fn.var)).to_event(event)
    raise DGMError(f"no Pyro counterpart for {type(fn).__name__}")
