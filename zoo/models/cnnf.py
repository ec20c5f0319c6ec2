"""``CNNF``: a torch ``nn.Module`` around a DGM whose forward pass *is* the inference engine.

The module holds only parameters (functionally tied: one tensor per weight, used as W forward
and Wᵀ in rendering). ``forward`` is stateless and differentiable end to end through all
cycles; the CNN baseline is the same module with ``cycles=0``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

import inference
from dgm import DGM
from inference import Options

READOUTS = ("last", "avg")


def _key(name: str) -> str:
    return name.replace(".", "__")


class CNNF(nn.Module):
    """CNN with recurrent generative feedback over ``model`` (a ``dgm.DGM``).

    Args:
        model: the DGM (skeleton, encoder, σ², τ², norm mode).
        cycles: feedback cycles after the plain pass (0 = the CNN baseline).
        options: engine options (exact by default; ``Options.original()`` for CNN-F's recipe).
        readout: "last" (logits of the last pass) or "avg" (mean of all passes' logits).
        seed: parameter initialisation seed.
    Example:
        >>> net = fashion_cnnf(cycles=5)
        >>> logits = net(x)                    # (N, 10), differentiable through all cycles
        >>> passes = net.forward_passes(x)     # list of (N, 10), one per pass
    """

    def __init__(self, model: DGM, *, cycles: int = 1, options: Options | None = None,
                 readout: str = "last", seed: int = 0):
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        if cycles < 0:
            raise ValueError(f"cycles must be >= 0, got {cycles}")
        self.dgm, self.cycles, self.readout = model, int(cycles), readout
        self.options = options or Options()
        init = model.init("torch", seed=seed, dtype=torch.float32)
        self.weights = nn.ParameterDict({_key(k): nn.Parameter(v) for k, v in init.items()})

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
        r = readout or self.readout
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
            raise ValueError(f"x must have shape (N, {', '.join(map(str, shape))}), "
                             f"got {tuple(x.shape)}")
