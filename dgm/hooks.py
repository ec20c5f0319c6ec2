"""Hook objects for the traversals in ``traverse``: plain CNN pass, fixed latents, norm policy."""
from __future__ import annotations

from backends import InputError

from .layers import Switch


class NormPolicy:
    """How Norm layers act (dgm-math §1.6): "none", "frozen" (scales fixed at the first pass,
    used in both directions) or "original" (RMS recomputed on whatever arrives, CNN-F)."""

    def __init__(self, ops, mode: str, scales: dict | None = None):
        self.ops, self.mode = ops, mode
        self.scales = {} if scales is None else scales

    @property
    def on_arrival(self) -> bool:
        """CNN-F's feedback (mode "original") normalises the signal arriving at a unit, before
        its un-pool and mask, not at the Norm's adjoint position (``traverse.render``)."""
        return self.mode == "original"

    def fixed(self, path: str) -> bool:
        """Is the scale at ``path`` independent of the map it divides (none, or frozen and
        taken)? Then the division commutes with placing a pooled map (0 / s = 0)."""
        return self.mode == "none" or (self.mode == "frozen" and path in self.scales)

    def __call__(self, path: str, x, direction: str, overwrite: bool = False):
        """``x`` divided by its scale; ``overwrite``: ``x`` is a temporary of the caller that
        the result may be written into (done only when no gradient flows through ``x``)."""
        if self.mode == "none":
            return x
        if self.mode == "original":
            scale = self.ops.channel_rms(x)
        elif path not in self.scales:  # frozen: fixed on the first forward pass through this Norm
            if direction != "forward":
                raise InputError(f"frozen norm scale for {path!r} missing: the state has no "
                                 f"norm_scales for it (start from the plain pass's state)")
            scale = self.scales[path] = self.ops.channel_rms(x)
        else:
            scale = self.scales[path]
        return self.ops.update(x, "/", scale, overwrite)


def zero_unplaced(ops, unplaced: dict, path: str, v):
    """``v`` (a pooled map at MaxPool ``path``) with the windows that hold no position set to
    0 (``State.unplaced``, CNN-F's AdaPool with both gates off): such a window outputs 0 on
    the forward walk and renders nothing, so the two walks stay each other's adjoint."""
    off = unplaced.get(path)
    return v if off is None else ops.where(off, v * 0, v)


class PlainPass:
    """The plain CNN pass (the engine's initial state, §3.6 row 7): ReLU gates z = 1[a > 0],
    max-pool positions t = argmax; records them (``record=False``: the same outputs, no
    latents kept, e.g. for the fixed encoder or the plain logits alone)."""

    def __init__(self, ops, norm: NormPolicy, record: bool = True):
        self.ops, self.norm, self.record = ops, norm, record
        self.z: dict = {}
        self.t: dict = {}

    def switch(self, path, layer: Switch, a, owned: bool = False):
        out, self.z[path] = self.ops.plain_gate(a, layer.leak, overwrite=owned)
        return out

    def biased_switch(self, path, layer: Switch, x, b, owned: bool):
        if self.record:  # a = x + b is then this pass's own temporary
            return self.switch(path, layer, self.ops.update(x, "+", b, owned), owned=True)
        return self.ops.bias_activate(x, b, layer.leak, overwrite=owned)

    def pool(self, path, layer, x):
        if not self.record:
            return self.ops.max_pool(x, layer.kernel_size)
        out, self.t[path] = self.ops.max_pool_positions(x, layer.kernel_size)
        return out


class FixedLatents:
    """Gated forward / rendering with given (z, t); records the top-down signals when rendering:
    ``ghat[path]`` at switches (ĝ_ℓ, full resolution) and ``gpool[path]`` at pools (g_ℓ).

    ``keep_ghat``: the switch paths whose ĝ is recorded (None: all); elsewhere the rendering
    is gated in the walk's own temporary instead of into a new array. ``signs``: record only
    the signs of ĝ and g (``ops.sign``, int8), all the exact block steps read."""

    def __init__(self, ops, z: dict, t: dict, norm: NormPolicy, keep_ghat=None,
                 signs: bool = False, unplaced: dict | None = None):
        self.ops, self.z, self.t, self.norm = ops, z, t, norm
        self.unplaced = {} if unplaced is None else unplaced
        self.keep_ghat, self.signs = keep_ghat, signs
        self.ghat: dict = {}
        self.gpool: dict = {}

    def switch(self, path, layer, a):
        return self.ops.gate(a, self.z[path], layer.leak)

    def pool(self, path, layer, x):
        return zero_unplaced(self.ops, self.unplaced, path,
                             self.ops.pool_select(x, self.t[path], layer.kernel_size))

    def switch_render(self, path, layer, g, owned: bool = False):
        if self.keep_ghat is None or path in self.keep_ghat:
            self.ghat[path] = self.ops.sign(g) if self.signs else g
            owned = owned and self.signs
        return self.ops.gate(g, self.z[path], layer.leak, overwrite=owned)

    def pool_render(self, path, layer, g):
        self.gpool[path] = self.ops.sign(g) if self.signs else g
        return self.t[path]

    def pool_unplaced(self, path, g):
        """The pooled rendering ``g`` with the windows that hold no position set to 0."""
        return zero_unplaced(self.ops, self.unplaced, path, g)

    def pooled_switch_render(self, path, layer, g, t, k: int):
        """γ(P_t z) ⊙ g on the pooled rendering, when ĝ at ``path`` is not recorded (its
        placed zeros stay +0 under the gate, γ ≥ 0); else None."""
        if self.keep_ghat is None or path in self.keep_ghat:
            return None
        return self.ops.gate(g, self.ops.pool_select(self.z[path], t, k), layer.leak)
