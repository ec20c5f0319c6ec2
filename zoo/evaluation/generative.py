"""How well a fitted DGM models its images (issue 15): rendering quality, class-conditional
samples, the generative classifier and repair of corrupted images.

Units: images in the model's input units [−1, 1]; PSNR on pixels in [0, 1] (x/2 + 1/2), so
PSNR = 10·log10(1 / MSE₀₁) = 10·log10(4 / MSE in input units); cosine between the flattened
input-unit vectors. All functions run without gradient.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import Tensor

import inference
from inference import class_scores, evidence_state
from zoo.data import iterate_batches
from zoo.diagnostics import with_noise
from zoo.models.cnnf import CNNF


def cosine(a: Tensor, b: Tensor) -> Tensor:
    """Per-example cosine of the flattened maps (N,)."""
    return torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """Per-example PSNR in dB of input-unit images (range 2): 10·log10(4 / MSE) (N,)."""
    mse = ((a - b) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(4 / mse.clamp_min(1e-12))


@torch.no_grad()
def map_rendering(net: CNNF, x: Tensor, y: Optional[Tensor] = None, cycles: int = 1) -> Tensor:
    """The MAP rendering g_0 of ``x`` (N, …): the engine for ``cycles`` cycles with y observed
    (``y`` given) or inferred (None: the engine's class), rendered from the final state."""
    model, params = net.dgm, net.params()
    res = inference.alternating_map(model, params, x, cycles=cycles, options=net.options,
                                    record="none", renderings=False, converged=False,
                                    observed_y=y)
    g0, _ = model.render(params, evidence_state(model, res.x_obs, res.state), keep_ghat=())
    return g0


@torch.no_grad()
def rendering_quality(net: CNNF, x: Tensor, y: Tensor, cycles: int = 1,
                      batch_size: int = 200) -> dict[str, Any]:
    """Mean cosine and PSNR of the MAP rendering g_0 to the image ``x`` (level 0 = pixels),
    with class = the label and class = the engine's prediction."""
    if net.dgm.encoder:
        raise ValueError("rendering_quality needs a pixel-level DGM (no encoder, ind = 0)")
    out: dict[str, list] = {"label": [], "prediction": []}
    for xb, yb in iterate_batches(x, y, batch_size, shuffle=False):
        for key, cls in (("label", yb), ("prediction", None)):
            g0 = map_rendering(net, xb, cls, cycles)
            out[key].append(torch.stack([cosine(g0, xb), psnr(g0, xb)], 1))
    result = {"n": len(y), "cycles": cycles}
    for key, rows in out.items():
        v = torch.cat(rows)
        result[key] = {"cosine": float(v[:, 0].mean()), "psnr_db": float(v[:, 1].mean())}
    return result


@torch.no_grad()
def log_joint_per_dim(net: CNNF, x: Tensor, y: Tensor, cycles: int = 0,
                      batch_size: int = 200, *, tau2: Optional[float] = None,
                      options: Optional[inference.Options] = None) -> dict[str, float]:
    """Mean over images of log p_B(x̃, h, y, z, t) / D and of each of its terms (§1.5) at the
    MAP state with y = the label (``inference.evidence_state``), in nats per dimension
    (D = the size of level 0, x̃ = the encoder's output). The state: the engine (``options``,
    default the net's) for ``cycles`` cycles from the plain pass, y observed; ``tau2``: the
    model's observation noise replaced by this one (None: the net's)."""
    model = net.dgm if tau2 is None else with_noise(net.dgm, tau2)
    params = net.params()
    dim = math.prod(model.level0_shape)
    sums: dict[str, float] = {}
    for xb, yb in zip(x.split(batch_size), y.split(batch_size)):   # x's dtype kept (float64)
        res = inference.alternating_map(model, params, xb, cycles=cycles,
                                        options=net.options if options is None else options,
                                        record="none", renderings=False, converged=False,
                                        observed_y=yb)
        lj = model.log_joint(params, res.x_obs, evidence_state(model, res.x_obs, res.state),
                             "B", observed="level0")
        for name, value in {"total": lj.total, **lj.terms}.items():
            sums[name] = sums.get(name, 0.0) + float(value.sum())
    return {name: v / (len(y) * dim) for name, v in sums.items()}


@torch.no_grad()
def class_sample_state(net: CNNF, per_class: int, seed: int = 0) -> inference.State:
    """The latents of ancestral samples of model B (``dgm.program.sample_b``) with the class
    fixed, ``per_class`` per class in class order: y, z, t drawn top-down, h the drawn one."""
    model, params = net.dgm, net.params()
    tr = model.program.trace(params, n=per_class * model.classes,
                             y=torch.arange(model.classes).repeat_interleave(per_class),
                             rng=seed)
    value = lambda site: tr[site]["value"]
    return inference.State(h=value("h"), y=value("y"),
                           z={p: value(f"z:{p}") for p in model.switch_sites},
                           t={p: value(f"t:{p}") for p in model.pool_sites})


@torch.no_grad()
def class_samples(net: CNNF, per_class: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Ancestral samples of model B (:func:`class_sample_state`) with the class fixed:
    ``(images (K·per_class, …), classes)``; the image is the mean rendering g_0 (the
    Gaussian's noise left out, as for a VAE's mean)."""
    state = class_sample_state(net, per_class, seed)
    g0, _ = net.dgm.render(net.params(), state, keep_ghat=())
    return g0, state.y


@torch.no_grad()
def sample_consistency(classifier: CNNF, images: Tensor, classes: Tensor) -> float:
    """Share of samples that ``classifier`` (its readout) assigns to their conditioning class."""
    return float((classifier(images).argmax(1) == classes).float().mean())


@torch.no_grad()
def generative_accuracy(net: CNNF, x: Tensor, y: Tensor, cycles: int = 1,
                        batch_size: int = 100, tau2: Optional[float] = None) -> dict[str, Any]:
    """Accuracy of ŷ = argmax_y log p_B(x̃, h_y, y, z_y, t_y) (``inference.class_scores``, one
    MAP run per class) next to the CNN readout's, on the same images. ``tau2``: run the
    per-class MAP (and score) under this observation noise instead of the model's."""
    model = net.dgm if tau2 is None else with_noise(net.dgm, tau2)
    hits_gen = hits_cnn = 0
    for xb, yb in iterate_batches(x, y, batch_size, shuffle=False):
        scores = class_scores(model, net.params(), xb, cycles=cycles, options=net.options)
        hits_gen += int((scores.argmax(1) == yb).sum())
        hits_cnn += int((net(xb).argmax(1) == yb).sum())
    return {"n": len(y), "cycles": cycles, "tau2": model.tau2, "generative": hits_gen / len(y),
            "cnn": hits_cnn / len(y)}


def corrupt(x: Tensor, kind: str, generator: torch.Generator) -> Tensor:
    """A minimal corruption set (input units, clipped to [−1, 1]): "noise" (Gaussian, σ = 0.5
    in input units), "blur" (3×3 box blur, applied twice), "occlusion" (a 10×10 square set to
    −1 at a random position)."""
    if kind == "noise":
        out = x + 0.5 * torch.randn(x.shape, generator=generator)
    elif kind == "blur":
        k = torch.full((1, 1, 3, 3), 1 / 9, dtype=x.dtype)
        out = x
        for _ in range(2):
            out = torch.nn.functional.conv2d(torch.nn.functional.pad(out, (1, 1, 1, 1),
                                                                     mode="replicate"), k)
    elif kind == "occlusion":
        out = x.clone()
        n, _, h, w = x.shape
        r = torch.randint(0, h - 10, (n,), generator=generator)
        c = torch.randint(0, w - 10, (n,), generator=generator)
        for i in range(n):
            out[i, :, r[i]:r[i] + 10, c[i]:c[i] + 10] = -1.0
    else:
        raise ValueError(f"unknown corruption {kind!r}; known: noise, blur, occlusion")
    return out.clamp(-1.0, 1.0)


def corrupt_any(x: Tensor, kind: str, generator: torch.Generator, severity: int = 3,
                seed: int = 0) -> Tensor:
    """``kind`` of the minimal set (:func:`corrupt`: "noise", "blur", "occlusion") or a
    corruption of the suite (``zoo.corruptions.CORRUPTIONS``, at ``severity``, images seeded by
    ``seed`` and their index), in input units [−1, 1]."""
    from zoo.corruptions import CORRUPTIONS, corrupt as suite_corrupt, to_signed, to_unit
    if kind not in CORRUPTIONS:
        return corrupt(x, kind, generator)
    x01 = to_unit(x.detach().cpu().numpy())
    return torch.from_numpy(to_signed(suite_corrupt(x01, kind, severity, seed=seed))).to(x)


@torch.no_grad()
def repair_gain(net: CNNF, x: Tensor, y: Tensor, kinds=("noise", "blur", "occlusion"),
                cycles: int = 3, seed: int = 0, severity: int = 3) -> dict[str, Any]:
    """Per corruption (:func:`corrupt_any`: the minimal set or the suite's names at
    ``severity``): PSNR of the corrupted input and of each cycle's rendering g_0 (the engine on
    the corrupted image, class inferred) to the clean image, and the accuracy of every pass
    (CNN readout). ``psnr_gain_db`` = the best cycle's rendering PSNR − the input's."""
    out: dict[str, Any] = {"n": len(y), "cycles": cycles}
    gen = torch.Generator().manual_seed(seed)
    model, params = net.dgm, net.params()
    for kind in kinds:
        xc = corrupt_any(x, kind, gen, severity, seed)
        res = inference.alternating_map(model, params, xc, cycles=cycles, options=net.options,
                                        record="none", converged=False)
        out[kind] = {
            "psnr_input_db": float(psnr(xc, x).mean()),
            "psnr_rendering_db": [float(psnr(g, x).mean()) for g in res.renderings],
            "cos_input": float(cosine(xc, x).mean()),
            "cos_rendering": [float(cosine(g, x).mean()) for g in res.renderings],
            "accuracy_per_pass": [float((s.argmax(1) == y).float().mean())
                                  for s in res.logits]}
        out[kind]["psnr_gain_db"] = max(out[kind]["psnr_rendering_db"]) - \
            out[kind]["psnr_input_db"] if res.renderings else math.nan
    return out
