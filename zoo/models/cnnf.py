"""``CNNF``: a torch ``nn.Module`` around a DGM whose forward pass *is* the inference engine.

The module holds only parameters (functionally tied: one tensor per weight, used as W forward
and Wᵀ in rendering). ``forward`` is stateless and differentiable end to end through all
cycles; the CNN baseline is the same module with ``cycles=0``.

Inputs live in [-1, 1] (``pixel / 255 * 2 - 1``). A batch that looks like other units — every
value >= 0 (likely [0, 1] or [0, 255] data) or values outside [-1, 1] — gets an
``InputRangeWarning`` (``strict_input=True``: an ``InputError`` instead): such data is
classified without error but wrongly (bundled fashion_cnn, full test set: 91.82 % on [-1, 1],
81.48 % on the same images in [0, 1]).
"""
from __future__ import annotations

import warnings
from typing import Sequence

import torch
from torch import nn

import inference
from backends import ConfigError, InputError
from dgm import DGM
from inference import Options

READOUTS = ("last", "avg")
RANGE_SLACK = 0.1   # in range: [-1 - slack, 1 + slack] (finite-difference probes step past ±1)


class InputRangeWarning(UserWarning):
    """A batch does not look like [-1, 1] data (see the module docstring)."""


def input_range_problem(x: torch.Tensor) -> str | None:
    """Why batch ``x`` does not look like [-1, 1] data, or None: every value >= 0 (in [-1, 1]
    data the dark background sits at -1) or a value outside [-1, 1] (beyond ``RANGE_SLACK``)."""
    if x.numel() == 0:
        return None
    lo, hi = (float(v) for v in torch.aminmax(x.detach()))
    if lo < -1 - RANGE_SLACK or hi > 1 + RANGE_SLACK:
        return (f"input values span [{lo:g}, {hi:g}], outside the model's [-1, 1] "
                f"(x = pixel / 255 * 2 - 1)")
    if lo >= 0:
        return (f"every input value is >= 0 (range [{lo:g}, {hi:g}]): this looks like [0, 1] "
                f"data, but the model expects [-1, 1] (x = 2 * x01 - 1)")
    return None


def _key(name: str) -> str:
    return name.replace(".", "__")


class CNNF(nn.Module):
    """CNN with recurrent generative feedback over ``model`` (a ``dgm.DGM``).

    Args:
        model: the DGM (skeleton, encoder, σ², τ², norm mode).
        cycles: feedback cycles after the plain pass (0 = the CNN baseline); no default here:
            each model's factory holds its defaults (cycles, ind, mode, readout).
        options: engine options (exact by default; ``Options.original()`` for CNN-F's recipe).
        readout: "last" (logits of the last pass) or "avg" (mean of all passes' logits).
        seed: parameter initialisation seed.
        strict_input: refuse (``InputError``) instead of warn when a batch does not look like
            [-1, 1] data (attribute ``strict_input``, may be changed later).
    Example:
        >>> net = fashion_cnnf(cycles=5)
        >>> logits = net(x)                    # (N, 10), differentiable through all cycles
        >>> passes = net.forward_passes(x)     # list of (N, 10), one per pass
    """

    def __init__(self, model: DGM, *, cycles: int, options: Options | None = None,
                 readout: str = "last", seed: int = 0, strict_input: bool = False):
        super().__init__()
        _check_readout(readout)
        if cycles < 0:
            raise ConfigError(f"cycles must be >= 0, got {cycles}")
        self.strict_input = strict_input
        self.dgm, self.cycles, self.readout = model, int(cycles), readout
        self.options = options or Options()
        init = model.init("torch", seed=seed, dtype=torch.float32)
        self.weights = nn.ParameterDict({_key(k): nn.Parameter(v) for k, v in init.items()})

    @property
    def is_cnn(self) -> bool:
        """Whether this is the CNN baseline: no feedback cycles, every target the plain pass."""
        return self.cycles == 0

    def params(self) -> dict[str, torch.Tensor]:
        """The DGM's parameter dict (names as in ``DGM.param_shapes``)."""
        return {k.replace("__", "."): v for k, v in self.weights.items()}

    def run(self, x: torch.Tensor, cycles: int | None = None, **kwargs) -> inference.Result:
        """The engine's full result (states, logits per pass, renderings) on batch ``x``."""
        self._check_input(x)
        c = self.cycles if cycles is None else cycles
        return inference.alternating_map(self.dgm, self.params(), x, cycles=c,
                                         options=self.options, record="none", **kwargs)

    def forward_passes(self, x: torch.Tensor, cycles: int | None = None) -> list[torch.Tensor]:
        """Logits of every pass: pass 0 is the plain CNN, pass c follows feedback cycle c.

        Without autograd (``torch.no_grad``) the engine runs under ``torch.inference_mode``;
        the returned logits are ordinary tensors. With 0 cycles only the plain CNN runs
        (``DGM.plain_logits``: the same logits, no latents recorded)."""
        if torch.is_grad_enabled():
            return self._passes(x, cycles)
        with torch.inference_mode():
            passes = self._passes(x, cycles)
        return [p.clone() for p in passes]

    def _passes(self, x: torch.Tensor, cycles: int | None) -> list[torch.Tensor]:
        if (self.cycles if cycles is None else cycles) == 0:
            self._check_input(x)
            return [self.dgm.plain_logits(self.params(), x)]
        return self.run(x, cycles, renderings=False, converged=False).logits

    def readout_logits(self, passes: Sequence[torch.Tensor], readout: str | None = None):
        """The scored logits of ``passes``: the last pass ("last") or their mean ("avg")."""
        r = readout or self.readout
        _check_readout(r)
        return passes[-1] if r == "last" else torch.stack(list(passes)).mean(0)

    def forward(self, x: torch.Tensor, cycles: int | None = None,
                readout: str | None = None) -> torch.Tensor:
        """Scored logits (N, K) of ``readout`` after ``cycles`` (defaults: the module's)."""
        return self.readout_logits(self.forward_passes(x, cycles), readout)

    def first_pass(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the plain feedforward pass only (the "first" attack target)."""
        return self.forward_passes(x, 0)[0]

    def _check_input(self, x) -> None:
        shape = self.dgm.input_shape
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
            raise InputError(f"x must have shape (N, {', '.join(map(str, shape))}), "
                             f"got {tuple(x.shape)}")
        problem = input_range_problem(x)
        if problem and self.strict_input:
            raise InputError(problem)
        if problem:
            warnings.warn(problem, InputRangeWarning, stacklevel=4)


def _check_readout(readout: str) -> None:
    if readout not in READOUTS:
        raise ConfigError(f"readout must be one of {READOUTS}, got {readout!r}")
