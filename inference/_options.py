"""Engine options: the exact alternating MAP and the original CNN-F heuristics as explicit choices.

dgm-math §4.5: every heuristic has an exact value; with all of them at their exact values the
engine *is* the exact engine (bit-identical — a test). The heuristics are never part of the
monotonicity property, except through ``guard=True`` (accept a heuristic step only if J does
not decrease, else take the exact step).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from backends import ConfigError, DGMError

_CHOICES = {
    "feedback": ("onehot", "softmax", "logits"),
    "h_update": ("exact", "damped", "original"),
    "block": ("joint", "z_then_t"),
    "ties": ("keep", "off", "original"),
}


@dataclass(frozen=True)
class Options:
    """How one cycle (render → S_h → S_1..S_L → S_y) is carried out.

    Attributes:
        feedback: the top vector rendered each cycle: "onehot" Aᵀe_y (exact, hard class),
            "softmax" Aᵀq with q = softmax(s) (the soft/EM variant, §4.4), "logits" Aᵀs (CNN-F).
        h_update: "exact" h ← x̃ + λ(g_0 − x̃) with λ = τ²/(σ²+τ²) (§3.4); "damped"
            h ← h + η(h* − h) toward that target (monotone for 0<η<2); "original" CNN-F's
            h ← h + η(g_0 − h).
        eta: η of the damped/original h update (CNN-F's res_param, 0.1).
        blend: CNN-F's per-layer blend a ← a + blend·(ĝ − a) before gating (0 = exact).
        block: "joint" (z, t) block per switch+pool (§3.2) or "z_then_t" (CNN-F's order).
        ties: "keep" the current value on exact ties (exact engine); "off" switches it off
            (zero feedback turns a unit off; a window at g = 0 takes any position: another
            block maximiser, still monotone); "original" is CNN-F's AdaPool on top of "off":
            a window whose feedback was exactly 0 outputs 0 and renders nothing next cycle
            (``State.unplaced``; not a block maximiser in general, so not part of the
            monotone variants).
        guard: accept each heuristic step only if the objective does not decrease.
    """
    feedback: str = "onehot"
    h_update: str = "exact"
    eta: float = 0.1
    blend: float = 0.0
    block: str = "joint"
    ties: str = "keep"
    guard: bool = False

    def __post_init__(self):
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise DGMError(f"Options.{name} must be one of {allowed}, got "
                               f"{getattr(self, name)!r}")
        if not 0.0 <= self.blend < 1.0:
            raise DGMError(f"Options.blend must be in [0, 1), got {self.blend}")
        if self.h_update != "exact" and not 0.0 < self.eta < 2.0:
            raise DGMError(f"Options.eta must be in (0, 2), got {self.eta}")

    @classmethod
    def original(cls, eta: float = 0.1) -> "Options":
        """CNN-F's released recipe: logit feedback, damped h toward g_0, per-layer blend η,
        gate-then-pool order, zero feedback switches off."""
        if not 0.0 < eta < 1.0:
            raise DGMError(f"Options.original eta must be in (0, 1) (it is both the h damping "
                           f"and the per-layer blend), got {eta}")
        return cls(feedback="logits", h_update="original", eta=eta, blend=eta,
                   block="z_then_t", ties="original")

    @property
    def is_exact(self) -> bool:
        """True when every step is an exact block maximiser (hard or soft class)."""
        return (self.feedback in ("onehot", "softmax") and self.h_update == "exact"
                and self.blend == 0.0 and self.ties == "keep")

    def with_(self, **changes) -> "Options":
        return replace(self, **changes)


PRESETS: dict[str, Options] = {
    "exact": Options(),
    "original": Options.original(),
    "guarded": Options.original().with_(guard=True),
    "soft": Options(feedback="softmax"),
}
"""The named engine settings used by models (``mode``), diagnostics (variants) and the CLI:
"exact" the exact alternating MAP; "original" CNN-F's released heuristics; "guarded" those
heuristics with each step accepted only if J does not decrease; "soft" the exact engine with
soft (softmax) class feedback (§4.4)."""


def preset(name: str) -> Options:
    """The options of preset ``name`` (a key of :data:`PRESETS`)."""
    if name not in PRESETS:
        raise ConfigError(f"mode must be an engine preset ({', '.join(PRESETS)}), got {name!r}")
    return PRESETS[name]
