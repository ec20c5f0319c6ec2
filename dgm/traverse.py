"""Walking a layer sequence bottom-up (gated forward) and top-down (rendering = exact adjoint).

Both walks call a *hooks* object at the latent sites, so every use of the model — the plain
CNN pass, fixed-latent evaluation, the engine's block updates, ancestral sampling — shares one
traversal. Hooks implement:

* ``switch(path, layer, a) -> out``: forward at a Switch with pre-activation ``a = x + b``;
  hooks may instead define ``biased_switch(path, layer, x, b, owned) -> out``, the same output
  computed from ``x`` and the broadcast bias ``b`` (e.g. one fused add+ReLU); ``owned``: ``x``
  is a temporary of the walk (never its input or a view of it), so it may be written into;
* ``pool(path, layer, x) -> out``: forward at a MaxPool on its input map ``x`` (N,C,H,W)
  (``ops.pool_select``/``ops.max_pool_positions`` act on k×k windows without copying them);
* ``switch_render(path, layer, g, owned) -> out``: rendering arriving at a Switch (this is
  ``ĝ_ℓ``); ``owned``: ``g`` is a temporary of the render walk, which it may write into;
* ``pool_render(path, layer, g) -> t``: pooled rendering ``g_ℓ`` arriving at a MaxPool; hooks
  may also define ``pool_unplaced(path, g) -> g``, the pooled map with the windows that hold
  no position set to 0 (CNN-F's zero-feedback windows, ``State.unplaced``), before placing;
  hooks may also define ``pooled_switch_render(path, layer, g, t, k) -> out | None``: the
  rendering of the Switch just below a MaxPool computed on the pooled ``g`` before it is
  placed (γ(z) ⊙ U_t g = U_t(γ(P_t z) ⊙ g), the same numbers on k² fewer entries), or None
  to take the full map through ``switch_render`` (e.g. when ĝ is recorded);
* ``norm(path, x, direction)``: a Norm layer, ``direction`` in {"forward", "render"}; on
  either walk's own temporaries it is called with ``overwrite=True`` (it may write into ``x``);
  when the hooks render pooled switches, ``norm.fixed(path)`` says whether the scale is
  independent of the map, so that the render may divide the pooled map instead;
  ``norm.on_arrival`` (CNN-F's recomputed norm) moves a Norm's render from its adjoint
  position to where the signal *arrives* at its unit: before the Switch/MaxPool run just above
  it (before the un-pool and the mask), and in a residual block's pre-activation, on the body
  term before the projection term is added (original-cnnf.md §A.2–A.3).

Paths name sites: ``"3"`` is layer 3, ``"5.body.2"`` is layer 2 of the body of residual block 5.
Parameters live in a flat dict under ``"{prefix}{path}.{name}"`` (e.g. ``"layers.3.weight"``).

The ownership and memo rule (the one rule behind every ``owned`` / ``overwrite`` argument in
``dgm``, ``inference`` and the backends):

* **Ownership.** A walk, a hook or a block step may write into an array only if it *owns* it:
  the array is a temporary that the same walk or step made (never the caller's input, a
  parameter, a state's latent, or a view of any of these). Ownership is passed down as
  ``owned`` (hooks) / ``overwrite`` (backend ops: ``update``, ``gate``, ``activate``,
  ``bias_activate``, ``plain_gate``, the pool searches, ``NormPolicy``); the op then writes in
  place only when no gradient flows through the array (``ops.needs_grad``), else it returns a new
  one. Results are the same numbers either way; only memory and time differ.
* **Memo.** A backend may remember facts derived from an array on the array itself (the torch
  backend: flat pool indices of a positions tensor, the selection ``P_t`` of a
  ``pool_update`` result), keyed by the identity and version counter of the arrays involved,
  so that an in-place write forgets them. Tensors made under ``torch.inference_mode`` have no
  version counter: the engine never writes into positions or gates in place, and a state that
  enters from outside (``DGM.check_state``: ``initial_state``, ``log_joint``) is forgotten on
  entry (``ops.forget``), since its owner may have edited it in place.
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

from .layers import AvgPool, Flatten, Layer, Linear, MaxPool, Norm, Residual, Shape, Switch


def iter_layers(layers: Sequence[Layer], prefix: str = "") -> Iterator[tuple[str, Layer]]:
    """All leaf layers with their paths, in forward (topological) order."""
    for i, layer in enumerate(layers):
        path = f"{prefix}{i}"
        if isinstance(layer, Residual):
            yield from iter_layers(layer.preact, f"{path}.preact.")
            yield from iter_layers(layer.body, f"{path}.body.")
            if layer.projection is not None:
                yield f"{path}.projection", layer.projection
        else:
            yield path, layer


def infer_shapes(layers: Sequence[Layer], in_shape: Shape, prefix: str = "",
                 out: dict | None = None) -> tuple[dict[str, Shape], Shape]:
    """Per-example input shape of every leaf (path → shape) and the output shape."""
    shapes = {} if out is None else out
    shape = tuple(in_shape)
    for i, layer in enumerate(layers):
        path = f"{prefix}{i}"
        if isinstance(layer, Residual):
            _, a_shape = infer_shapes(layer.preact, shape, f"{path}.preact.", shapes)
            _, body_shape = infer_shapes(layer.body, a_shape, f"{path}.body.", shapes)
            if layer.projection is not None:
                shapes[f"{path}.projection"] = a_shape
                sc_shape = layer.projection.out_shape(a_shape)
            else:
                sc_shape = shape
            if tuple(sc_shape) != tuple(body_shape):
                from backends import DGMError
                raise DGMError(f"residual block {path}: body gives {body_shape} but the shortcut "
                               f"gives {sc_shape}; add a projection Conv2d")
            shape = tuple(body_shape)
        else:
            shapes[path] = shape
            shape = tuple(layer.out_shape(shape))
    return shapes, shape


def over_sigma2(h, sigma2: float):
    """The gated forward's input h/σ², skipping the division by 1 (bit-identical, one pass less)."""
    return h if sigma2 == 1.0 else h / sigma2


def channel_view(b, ndim: int):
    """Broadcast a per-channel vector (C,) against (N,C,...) of ``ndim`` dims."""
    return b.reshape((1, -1) + (1,) * (ndim - 2))


def forward(ops, layers: Sequence[Layer], params: dict, x, hooks: Any, prefix: str,
            path_prefix: str = ""):
    """Bottom-up pass: ``x`` (N, *in_shape) → output, calling ``hooks`` at the sites."""
    biased_switch = getattr(hooks, "biased_switch", None)
    owned = False  # is x a temporary made by this walk (Flatten and Norm may return views)?
    for i, layer in enumerate(layers):
        path = f"{path_prefix}{i}"
        if isinstance(layer, Linear):
            x = layer.apply(ops, _sub(params, prefix, path, layer), x)
            owned = owned or not isinstance(layer, Flatten)
            continue
        if isinstance(layer, Switch):
            b = channel_view(params[f"{prefix}{path}.bias"], x.ndim)
            x = hooks.switch(path, layer, x + b) if biased_switch is None else \
                biased_switch(path, layer, x, b, owned)
        elif isinstance(layer, MaxPool):
            x = hooks.pool(path, layer, x)
        elif isinstance(layer, Norm):
            x, owned = _norm_forward(hooks, path, x, owned)
            continue
        elif isinstance(layer, Residual):
            a = forward(ops, layer.preact, params, x, hooks, prefix, f"{path}.preact.")
            out = forward(ops, layer.body, params, a, hooks, prefix, f"{path}.body.")
            if layer.projection is None:
                x = out + x
            else:
                x = out + layer.projection.apply(
                    ops, _sub(params, prefix, f"{path}.projection", layer.projection), a)
        else:
            raise TypeError(f"unknown layer type {type(layer).__name__} at {path}")
        owned = True
    return x


def _norm_forward(hooks: Any, path: str, x, owned: bool):
    """A Norm on the forward walk: ``(x / scale, owned)``, in place when ``x`` is the walk's own
    temporary; a new quotient is the walk's own too. (A helper, so that no loop variable
    keeps the map alive after the walk has moved on.)"""
    out = hooks.norm(path, x, "forward", overwrite=owned)
    return out, owned or out is not x


def render(ops, layers: Sequence[Layer], params: dict, g, hooks: Any, prefix: str,
           shapes: dict[str, Shape], path_prefix: str = "", arrived: bool = False):
    """Top-down pass = exact adjoint of ``forward`` with the hooks' gates: ``g`` → level below.

    With ``hooks.norm.on_arrival`` the Norms are applied where the signal arrives at their unit
    (``arrival_norms``); ``arrived``: those due at the top of ``layers`` were already applied."""
    owned = False  # is g a temporary made by this walk (not the caller's g, nor a view of it)?
    done_from = len(layers)  # layers from here up to the last pool were rendered on its map
    due = arrival_norms(layers) if _on_arrival(hooks) else {}
    moved = {j for js in due.values() for j in js}
    if arrived:
        due.pop(len(layers) - 1, None)
    for i in reversed(range(len(layers))):
        layer, path = layers[i], f"{path_prefix}{i}"
        if i >= done_from or i in moved:
            continue
        for j in due.get(i, ()):
            g, owned = hooks.norm(f"{path_prefix}{j}", g, "render", overwrite=owned), True
        if isinstance(layer, Linear):
            g = layer.adjoint(ops, _sub(params, prefix, path, layer), g, shapes[path])
            owned = owned or not _adjoint_is_view(layer)
            continue
        if isinstance(layer, Switch):
            g = hooks.switch_render(path, layer, g, owned)
        elif isinstance(layer, MaxPool):
            g, done_from = _render_pool(ops, layers, i, g, hooks, path_prefix)
        elif isinstance(layer, Norm):
            g = hooks.norm(path, g, "render", overwrite=owned)
        elif isinstance(layer, Residual):
            g_a = render(ops, layer.body, params, g, hooks, prefix, shapes, f"{path}.body.")
            arrived = _on_arrival(hooks)
            if arrived:  # the pre-activation's Norm acts on the body term alone (§A.3)
                for j in arrival_norms(layer.preact).get(len(layer.preact) - 1, ()):
                    g_a = hooks.norm(f"{path}.preact.{j}", g_a, "render", overwrite=True)
            if layer.projection is not None:
                pp = f"{path}.projection"
                g_a = g_a + layer.projection.adjoint(
                    ops, _sub(params, prefix, pp, layer.projection), g, shapes[pp])
            g_x = render(ops, layer.preact, params, g_a, hooks, prefix, shapes, f"{path}.preact.",
                         arrived)
            g = g_x + g if layer.projection is None else g_x
        else:
            raise TypeError(f"unknown layer type {type(layer).__name__} at {path}")
        owned = True
    return g


def arrival_norms(layers: Sequence[Layer]) -> dict[int, tuple[int, ...]]:
    """Where CNN-F's feedback applies each Norm: index k of the top of the run of Switch/MaxPool
    layers directly above the Norm at j → (j, …). A Norm with no such run (e.g. under a
    linear layer) stays at its adjoint position and is not listed."""
    due: dict[int, tuple[int, ...]] = {}
    for j, layer in enumerate(layers):
        if isinstance(layer, Norm):
            k = j
            while k + 1 < len(layers) and isinstance(layers[k + 1], (Switch, MaxPool)):
                k += 1
            if k != j:
                due[k] = due.get(k, ()) + (j,)
    return due


def _adjoint_is_view(layer: Linear) -> bool:
    """Whether ``layer.adjoint`` may return a view of its input (a reshape, or the nearest
    upsampling's broadcast), which the walk must not write into."""
    return isinstance(layer, Flatten) or (isinstance(layer, AvgPool) and layer.render == "nearest")


def _on_arrival(hooks: Any) -> bool:
    return bool(getattr(getattr(hooks, "norm", None), "on_arrival", False))


def _render_pool(ops, layers: Sequence[Layer], i: int, g, hooks: Any, path_prefix: str):
    """The MaxPool at ``i``: records the pooled rendering g_ℓ (``pool_render``), applies the
    pointwise stages just below it to the pooled map — a Switch whose ĝ is not recorded
    (``pooled_switch_render``), then a Norm with fixed scales — and places the result:
    U_t commutes with them (the placed zeros stay +0), so the same numbers on k² fewer
    entries. Returns ``(U_t g, index of the lowest layer done)``."""
    layer, k = layers[i], layers[i].kernel_size
    g = ops.fast_layout(g)  # the pooled rendering is also used by the sweep
    t = hooks.pool_render(f"{path_prefix}{i}", layer, g)
    pool_unplaced = getattr(hooks, "pool_unplaced", None)
    if pool_unplaced is not None:
        g = pool_unplaced(f"{path_prefix}{i}", g)
    pooled_switch_render = getattr(hooks, "pooled_switch_render", None)
    j = i - 1
    if pooled_switch_render is not None and j >= 0 and isinstance(layers[j], Switch):
        gated = pooled_switch_render(f"{path_prefix}{j}", layers[j], g, t, k)
        if gated is not None:  # (a new array: the recorded g_ℓ is not written into)
            g, j = gated, j - 1
            norm_path = f"{path_prefix}{j}"
            if j >= 0 and isinstance(layers[j], Norm) and hooks.norm.fixed(norm_path):
                g, j = hooks.norm(norm_path, g, "render", overwrite=True), j - 1
    return ops.pool_place(g, t, k), j + 1


def _sub(params: dict, prefix: str, path: str, layer: Linear) -> dict:
    """The parameters of one linear layer, by their short names."""
    return {name: params[f"{prefix}{path}.{name}"] for name in layer.param_names}
