"""``diagnose``: the likelihood diagnostics over a batch of real images, clean and PGD-perturbed.

For every batch and every condition ("clean"; "pgd": L∞ PGD on the *first* pass, the plain CNN,
as in CNN-F's protocol) and every engine variant (a preset of ``inference.PRESETS``: "exact" the
exact alternating MAP; "original" CNN-F's heuristics; "guarded" the heuristics with the
monotone guard of dgm-math §4.5; "soft" soft class feedback), run the engine recording every single step (``trace``) and
collect the records; then summarise them (``summarize``).

Requirements: torch tensors (the attack needs autograd); float64 parameters make the decrease
test meaningful (§4.6).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from backends import ConfigError
from dgm import DGM
from inference import PRESETS, Options
from zoo.attacks import ce_loss, pgd

from ._records import RunRecord, StepRecord, to_numpy, trace
from ._summary import summarize

VARIANTS: dict[str, Options] = PRESETS
"""The engine variants a diagnosis can run: the named presets of ``inference.PRESETS``."""
CONDITIONS = ("clean", "pgd")


def with_noise(model: DGM, tau2: float, sigma2: float | None = None) -> DGM:
    """The same DGM (layers, encoder, norm mode) with observation noise τ² (and σ²).

    A finite τ² keeps the observation term T_obs, so the objective depends on x (§3.1);
    τ² = σ²/9 makes the exact h-step equal CNN-F's first update (λ = 0.1, §3.6 row 2)."""
    return DGM(model.layers, model.classes, encoder=model.encoder,
               sigma2=model.sigma2 if sigma2 is None else sigma2, tau2=tau2,
               input_shape=model.input_shape, norm=model.norm)


@dataclass
class Example:
    """Arrays kept for the image-repair strips (first few images of the first batch):
    ``x`` the (possibly perturbed) input, ``x_obs`` x̃, ``renderings`` g_0 of every cycle and
    ``h`` after every cycle (lists of (n, *level0)); ``preds`` (passes, n); ``labels`` (n,)."""
    x: np.ndarray
    x_obs: np.ndarray
    renderings: list[np.ndarray]
    h: list[np.ndarray]
    preds: np.ndarray
    labels: np.ndarray


@dataclass
class Diagnosis:
    """Everything ``diagnose`` measured: records, the summary rows, strips, and the wall-clock
    and process CPU seconds it took."""
    steps: list[StepRecord]
    runs: list[RunRecord]
    summary: list[dict[str, Any]]
    examples: dict[tuple[str, str], Example] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def attack_first_pass(model: DGM, params: Mapping[str, Any], x: torch.Tensor, y: torch.Tensor, *,
                      eps: float, step_size: float, steps: int,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """L∞ PGD against the plain CNN pass (CNN-F's "first" attack), inputs clipped to [−1, 1].

    Returns the final iterate (N, *input_shape)."""
    def first_pass(xb):
        return model.plain_state(params, model.encode(params, xb))[1]

    return pgd(ce_loss(first_pass), x, y, eps=eps, step_size=step_size, steps=steps,
               generator=generator).x_final


def diagnose(model: DGM, params: Mapping[str, Any], x: torch.Tensor, labels: torch.Tensor, *,
             variants: Sequence[str] = ("exact", "original"),
             conditions: Sequence[str] = CONDITIONS, cycles: int = 5, batch_size: int = 32,
             eps: float = 0.2, step_size: float = 0.071, pgd_steps: int = 7, seed: int = 0,
             keep_examples: int = 6, progress: bool | None = None) -> Diagnosis:
    """Likelihood diagnostics of alternating-MAP inference on ``x``.

    Args:
        model, params: the DGM (finite τ², see ``with_noise``) and torch parameters.
        x: (N, *model.input_shape) images in [−1, 1], same dtype/device as ``params``;
            labels: (N,) int64.
        variants: names in ``VARIANTS``; conditions: subset of ("clean", "pgd").
        cycles: the maximum number of cycles (every run stops at a fixed point of the batch).
        eps, step_size, pgd_steps: the PGD budget in input units (defaults: CNN-F's FMNIST
            PGD-7, ε = 0.2 = 0.1 in pixel units).
        keep_examples: how many images of the first batch to keep for repair strips.
        progress: tqdm bar (None: only on a terminal).
    Returns:
        ``Diagnosis`` with step and run records, the summary rows and the strip arrays.
    Example:
        >>> d = diagnose(with_noise(net.dgm, 1 / 9), params64, x, y)
        >>> print(format_summary(d.summary))
    """
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ConfigError(f"variants must be among {sorted(VARIANTS)}, got {unknown}")
    bad = [c for c in conditions if c not in CONDITIONS]
    if bad:
        raise ConfigError(f"conditions must be among {CONDITIONS}, got {bad}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if len(x) != len(labels):
        raise ConfigError(f"x and labels must have the same length, got {len(x)} and "
                         f"{len(labels)}")
    start, cpu_start = time.perf_counter(), time.process_time()
    n_batches = math.ceil(len(x) / batch_size)
    steps: list[StepRecord] = []
    runs: list[RunRecord] = []
    examples: dict[tuple[str, str], Example] = {}
    bar = tqdm(total=n_batches * len(conditions) * len(variants), desc="diagnose", unit="run",
               disable=None if progress is None else not progress)
    for b in range(n_batches):
        sl = slice(b * batch_size, (b + 1) * batch_size)
        xb, yb = x[sl], labels[sl]
        ids = list(range(sl.start, sl.start + len(xb)))
        for condition in conditions:
            if condition == "pgd":
                gen = torch.Generator(device=xb.device).manual_seed(seed + b)
                xin = attack_first_pass(model, params, xb, yb, eps=eps, step_size=step_size,
                                        steps=pgd_steps, generator=gen)
            else:
                xin = xb
            init_classes = None  # every variant starts from the same plain state of xin
            for variant in variants:
                with torch.no_grad():
                    tr = trace(model, params, xin, yb, options=VARIANTS[variant],
                               variant=variant, condition=condition, cycles=cycles,
                               until_fixed_point=True, image_ids=ids,
                               init_classes=init_classes)
                init_classes = tr.init_classes
                steps += tr.steps
                runs += tr.runs
                if b == 0 and keep_examples:
                    examples[(variant, condition)] = _example(tr.result, xin, yb, keep_examples)
                bar.update(1)
                bar.set_postfix(batch=f"{b + 1}/{n_batches}", cond=condition, var=variant)
    bar.close()
    config = dict(variants=list(variants), conditions=list(conditions), cycles=cycles,
                  batch_size=batch_size, eps=eps, step_size=step_size, pgd_steps=pgd_steps,
                  seed=seed, n_images=len(x), sigma2=model.sigma2, tau2=model.tau2,
                  dtype=str(x.dtype).replace("torch.", ""))
    return Diagnosis(steps=steps, runs=runs, summary=summarize(steps, runs), examples=examples,
                     config=config, seconds=time.perf_counter() - start,
                     cpu_seconds=time.process_time() - cpu_start)


def _example(result, x, labels, n: int) -> Example:
    states = result.states[1:]  # the state after every cycle
    return Example(x=to_numpy(x[:n]), x_obs=to_numpy(result.x_obs[:n]),
                   renderings=[to_numpy(g[:n]) for g in result.renderings],
                   h=[to_numpy(s.h[:n]) for s in states],
                   preds=np.stack([to_numpy(s[:n]).argmax(-1) for s in result.logits]),
                   labels=to_numpy(labels[:n]))
