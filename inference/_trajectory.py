"""What the engine records: the objective after every single step, states and predictions."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dgm import State


@dataclass
class Step:
    """One recorded step: ``cycle`` (0 = initial state), ``name`` ("init", "h", a site path,
    "y"), the objective J (or the free energy F for soft feedback) per example (N,), the class
    per example, and the state right after the step."""
    cycle: int
    name: str
    objective: Any
    y: Any
    state: State


@dataclass
class Trajectory:
    steps: list[Step] = field(default_factory=list)

    def add(self, step: Step) -> None:
        self.steps.append(step)

    def objectives(self):
        """(n_steps, N) array-like list of objectives, in step order."""
        return [s.objective for s in self.steps]

    def names(self) -> list[str]:
        return [f"{s.cycle}:{s.name}" for s in self.steps]


@dataclass
class Result:
    """The engine's output.

    Attributes:
        state: the final state.
        logits: logits of every forward pass (pass 0 = the plain CNN), each (N, K).
        states: the state after every cycle (index 0: initial) when recording; empty with
            ``record="none"``.
        trajectory: per-step objectives/states (``record="step"``) or per-cycle.
        cycles: number of cycles run; converged: per-example fixed point reached (bool (N,)).
        renderings: the rendering g_0 that started each cycle (the feedback reconstruction).
        x_obs: x̃, the observation at level 0 (encoder output).
        fixed_at: with ``until_fixed_point``, per example (N,) ints: the first cycle that left
            its state unchanged (its fixed point is the state after one cycle less), 0 where
            none did within the cap; None otherwise.
    """
    state: State
    logits: list
    states: list
    trajectory: Trajectory
    cycles: int
    converged: Any
    renderings: list = field(default_factory=list)
    x_obs: Any = None
    fixed_at: Any = None

    @property
    def predictions(self) -> list:
        """Arg-max class of every pass."""
        return [s.argmax(-1) for s in self.logits]
