"""The forward sweep S_1 … S_L of one cycle (dgm-math §3.5): a bottom-up pass in which every
Switch/MaxPool performs its block update with the feedback rendered at the start of the cycle.

Gauss–Seidel: when site ℓ is updated, ``a_ℓ`` already uses the new lower gates and the stored
``ĝ_ℓ`` comes from the (not yet updated) upper gates, so each update is an exact block step.
``on_step(name, sites, z, t, unplaced)`` is called after every site update (trajectory recording) and may return
per-example replacement latents (the guard).
"""
from __future__ import annotations

from typing import Callable

from dgm.hooks import NormPolicy, zero_unplaced

from . import _blocks as B
from ._options import Options


class Sweep:
    def __init__(self, ops, model, z: dict, t: dict, ghat: dict, gpool: dict, options: Options,
                 norm: NormPolicy, on_step: Callable | None = None):
        self.ops, self.model, self.options, self.norm = ops, model, options, norm
        self.z, self.t = dict(z), dict(t)
        self.ghat, self.gpool = ghat, gpool
        self.on_step = on_step
        self.joint_done: set[str] = set()
        self.keep = options.ties == "keep"
        # ties "original": windows whose feedback g is exactly 0 get no position (State.unplaced)
        self.unplaced: dict = {}
        # a joint block hands its pool the pooled output directly, unless a step callback may
        # replace the latents after the step or the blend makes the gated map differ from a
        self.pooled: dict = {}
        self.fuse = on_step is None and not options.blend

    @staticmethod
    def reads(model, options: Options) -> tuple[set[str] | None, bool]:
        """What a sweep with ``options`` reads of the rendering: ``(sites, signs)``.

        ``sites``: the switches whose full-resolution ĝ it reads: all (None) unless joint
        blocks run unblended, whose switches read the pooled g instead. ``signs``: without
        the blend every step reads only signs — z = 1[a·ĝ > 0] (ties at a·ĝ = 0), the
        window extremum chosen by the sign of g — so the signs suffice (exactly: a·sign(ĝ)
        has the sign of a·ĝ in exact arithmetic, where a float product may underflow to 0)."""
        signs = not options.blend
        if options.block != "joint" or options.blend or options.guard:
            return None, signs
        return {path for path in model.switch_sites if path not in model.pool_partner}, signs

    def biased_switch(self, path, layer, x, b, owned: bool):
        """``switch`` on a = x + b, the sum written into ``x`` when it is the walk's own
        temporary (``a`` is only read by the step and the gate, so it is the sweep's own)."""
        return self.switch(path, layer, self.ops.update(x, "+", b, owned), owned=True)

    def switch(self, path, layer, a, owned: bool = False):
        """The block step at a Switch (and its pool partner) on the pre-activation ``a``, and
        the gated output; ``owned``: ``a`` is a temporary the step may write into."""
        opt, ops = self.options, self.ops
        gating = a + opt.blend * (self.ghat[path] - a) if opt.blend else a
        pool = self.model.pool_partner.get(path) if opt.block == "joint" else None
        if pool is not None:
            k = self.model.site_layer[pool].kernel_size
            args = (ops, gating, self.gpool[pool], self.z[path], self.t[pool], k, self.keep)
            self.joint_done.add(pool)
            self._unplace(pool)
            if self.fuse:  # the pool returns P_t(γ(z) ⊙ a); the full gated map is not made
                self.z[path], self.t[pool], self.pooled[pool] = B.joint_step_pooled(
                    *args, layer.leak, overwrite=owned)
                return a  # (its contents are spent when owned; the pool hook ignores it)
            self.z[path], self.t[pool] = B.joint_step(*args, layer.leak)
            self._step(path, (path, pool))
        else:
            self.z[path] = B.z_step(ops, gating, self.ghat[path], self.z[path], self.keep)
            self._step(path, (path,))
        out = a if (opt.guard or not opt.blend) else gating
        return ops.gate(out, self.z[path], layer.leak, overwrite=owned or out is not a)

    def pool(self, path, layer, x):
        if path in self.pooled:
            return zero_unplaced(self.ops, self.unplaced, path, self.pooled.pop(path))
        k = layer.kernel_size
        if path not in self.joint_done:
            self.t[path] = B.pool_t_step(self.ops, x, self.gpool[path], self.t[path], k, self.keep)
            self._unplace(path)
            self._step(path, (path,))
        return zero_unplaced(self.ops, self.unplaced, path, self.ops.pool_select(x, self.t[path], k))

    def _unplace(self, pool: str) -> None:
        """Ties "original" (CNN-F's AdaPool): a window with feedback exactly 0 has both gates
        off — its output is 0 and the next rendering places nothing there. Not with
        ``guard``: its exact fallbacks keep every window placed."""
        if self.options.ties == "original" and not self.options.guard:
            self.unplaced[pool] = self.gpool[pool] == 0

    def _step(self, name: str, sites: tuple[str, ...]) -> None:
        if self.on_step is not None:
            replaced = self.on_step(name, sites, self.z, self.t, self.unplaced)
            if replaced is not None:
                self.z, self.t = replaced
