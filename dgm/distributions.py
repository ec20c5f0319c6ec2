"""The few distributions the DGM program needs (dgm-math §1.3–1.4), backend-generic.

Requirements: never imports torch; every op goes through the array's backend. Each distribution
holds a batch of N independent examples: all axes but the first are event axes, so ``log_prob``
returns shape (N,) (the log mass/density summed over the event) and ``sample(rng)`` draws one
value per example with an explicit backend RNG (``ops.rng``).

* ``Categorical(logits)`` — logits (N, K); values int (N,).
* ``Bernoulli(logits, leak=0.0)`` — a switch: values bool (N, ...), on with gate value 1, off
  with gate value ``leak`` α, ``p(z) ∝ exp(γ(z)·u)`` for logits u; α = 0 is the plain Bernoulli
  ``log p = −sp((1 − 2z)·u)``; in general ``log p = γ(z)·u − sp((1 − α)u) − αu``.
* ``UniformPosition(kk, like)`` — one in-window position in 0..kk−1 per pooling window;
  ``like`` (N, C, H', W') gives the window grid; ``log p = −n log kk``.
* ``Normal(loc, var)`` — isotropic Gaussian with scalar variance ``var`` around ``loc`` (N, ...);
  its density is :func:`gaussian_log_density`, which the closed-form log joint uses too.
* ``Factor(log_factor)`` — the unit site behind ``dgm.primitives.factor``: adds ``log_factor`` (N,).
"""
from __future__ import annotations

import math
from typing import Any

from backends import DGMError, get_backend

from .layers import switch_log_normaliser


class Distribution:
    """Base class: ``ops`` (the backend), ``like`` (fixes dtype/device), ``batch_size`` N."""

    def __init__(self, like: Any):
        self.ops = get_backend(like)
        self.like = like
        self.batch_size = int(like.shape[0])

    def log_prob(self, value: Any) -> Any:
        """Log mass/density of ``value`` summed over event axes, shape (N,)."""
        raise NotImplementedError

    def sample(self, rng: Any) -> Any:
        """One draw per example, using the explicit generator ``rng``."""
        raise NotImplementedError

    def _flat_sum(self, x):
        return x.reshape(x.shape[0], -1).sum(-1)

    def _gumbel_argmax(self, rng, logits):
        """argmax(logits + Gumbel noise) over the last axis: an exact categorical draw."""
        u = self.ops.uniform(rng, logits.shape, logits)
        return self.ops.argmax(logits - self.ops.xp.log(-self.ops.xp.log(u)), -1)


class Categorical(Distribution):
    def __init__(self, logits: Any):
        super().__init__(logits)
        if logits.ndim != 2:
            raise DGMError(f"Categorical: logits must have shape (N, K), got {tuple(logits.shape)}")
        self.logits = logits

    def log_prob(self, value):
        log_p = self.ops.log_softmax(self.logits, -1)
        return self.ops.take_along_axis(log_p, value[:, None], -1)[:, 0]

    def sample(self, rng):
        return self._gumbel_argmax(rng, self.logits)


class Bernoulli(Distribution):
    def __init__(self, logits: Any, leak: float = 0.0):
        super().__init__(logits)
        if not 0.0 <= leak < 1.0:
            raise DGMError(f"Bernoulli: leak must be in [0, 1), got {leak}")
        self.logits, self.leak = logits, float(leak)

    def log_prob(self, value):
        u, a = self.logits, self.leak
        energy = self.ops.gate_values(value, u, a) * u
        return self._flat_sum(energy - switch_log_normaliser(self.ops, u, a))

    def sample(self, rng):
        v = self.logits * (1 - self.leak)  # p(on) = sigmoid(v) = exp(-sp(-v))
        u = self.ops.uniform(rng, v.shape, v)
        return u < self.ops.xp.exp(-self.ops.softplus(-v))


class UniformPosition(Distribution):
    def __init__(self, kk: int, like: Any):
        super().__init__(like)
        if int(kk) < 1:
            raise DGMError(f"UniformPosition: kk must be >= 1, got {kk}")
        self.kk, self.shape = int(kk), tuple(like.shape)

    def log_prob(self, value):
        if tuple(value.shape) != self.shape:
            raise DGMError(f"UniformPosition: value must have shape {self.shape}, "
                           f"got {tuple(value.shape)}")
        n = math.prod(self.shape[1:])
        inside = ((value >= 0) & (value < self.kk)).reshape(self.batch_size, -1).all(-1)
        zero = self.ops.zeros((self.batch_size,), self.like)
        return self.ops.where(inside, zero - n * math.log(self.kk), zero - math.inf)

    def sample(self, rng):
        return self._gumbel_argmax(rng, self.ops.zeros(self.shape + (self.kk,), self.like))


class Normal(Distribution):
    def __init__(self, loc: Any, var: float):
        super().__init__(loc)
        if not var > 0 or not math.isfinite(var):
            raise DGMError(f"Normal: var must be positive and finite, got {var}")
        self.loc, self.var = loc, float(var)

    def log_prob(self, value):
        return gaussian_log_density(self.ops, value, self.loc, self.var)

    def sample(self, rng):
        return self.loc + math.sqrt(self.var) * self.ops.normal(rng, self.loc.shape, self.loc)


def gaussian_log_density(ops, value: Any, mean: Any, var: float) -> Any:
    """log N(value; mean, var·I) summed per example, (N,):
    −‖value − mean‖²/(2·var) − (D/2)·log(2π·var), D the event size."""
    d = value - mean
    dim = math.prod(value.shape[1:])
    return -ops.batch_dot(d, d) / (2 * var) - 0.5 * dim * (math.log(2 * math.pi * var))


class Factor(Distribution):
    def __init__(self, log_factor: Any):
        super().__init__(log_factor)
        if log_factor.ndim != 1:
            raise DGMError(f"Factor: log_factor must have shape (N,), got "
                           f"{tuple(log_factor.shape)}")
        self.log_factor = log_factor

    def empty_value(self):
        """The site's value: an empty (N, 0) array (a factor has nothing to draw)."""
        return self.ops.zeros((self.batch_size, 0), self.like)

    def log_prob(self, value):
        return self.log_factor

    def sample(self, rng):
        return self.empty_value()
