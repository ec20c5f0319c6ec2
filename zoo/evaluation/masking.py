"""Gradient-masking checks run in every evaluation (``zoo.attacks.checks`` on our cells).

Per (model, readout) row, on the first ``n`` images of the subset (the "check subset"):

* accuracy → 0 at a large budget (``large_eps`` pixel units, PGD-``large_steps``) for every
  gradient attack, and accuracy non-increasing in ε (every attack and the worst case, whole
  subset);
* more PGD steps (``steps // 4`` vs ``steps``) and more restarts (1 vs ``restarts``) never raise
  accuracy, for the attack on the scored readout ("e2e"; the plain pass for a CNN), at the
  largest ε;
* black-box attacks not stronger than white-box PGD beyond the Wilson half-width: the transfer
  attack at every ε > 0 (whole subset) and SPSA (margin loss on the scored readout, Adam step
  ``step_scale·ε/spsa_steps``) at the largest ε on the first ``spsa_n`` images, each against the
  per-image worst case of the gradient attacks on the same images;
* repeating an attack (PGD-``repeat_steps`` on the first ``repeat_n`` images) gives identical
  adversarial inputs and predictions.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Mapping

import torch
from torch import Tensor

from zoo.attacks import (CheckResult, accuracy_vanishes, blackbox_not_stronger, margin_loss,
                         more_steps_never_help, pixel_to_input, repeatable, spsa, worst_case)
from zoo.models.cnnf import CNNF

from .runner import Evaluation, attack_inputs, cell_seed, score
from .targets import TARGETS


@dataclass(frozen=True)
class CheckConfig:
    """Sizes of the checks (see the module docstring)."""
    n: int = 32
    large_eps: float = 0.5
    large_steps: int = 20
    restarts: int = 2
    spsa_n: int = 16
    spsa_samples: int = 64
    spsa_steps: int = 10
    repeat_n: int = 8
    repeat_steps: int = 5


def _named(results: list[CheckResult], suffix: str) -> list[CheckResult]:
    return [replace(r, name=f"{r.name}[{suffix}]") for r in results]


def _acc(correct: Tensor) -> float:
    return float(correct.float().mean())


def run_checks(models: Mapping[str, CNNF], x: Tensor, y: Tensor, ev: Evaluation,
               check: CheckConfig = CheckConfig(),
               log: Callable[[str], None] = print) -> dict[tuple[str, str], list[CheckResult]]:
    """All checks of every row of ``ev`` (computed on ``x``, ``y``). Returns row -> results."""
    cfg = ev.config
    out: dict[tuple[str, str], list[CheckResult]] = {}
    for m, r in ev.rows():
        net, results = models[m], []
        attacks = ev.attacks(m, r)
        grads = [a for a in attacks if a in TARGETS] if net.cycles else \
            [a for a in attacks if a in TARGETS][:1]
        eps_pos = [e for e in cfg.eps if e > 0]
        n = min(check.n, len(y))
        xs, ys = x[:n], y[:n]

        def cell(a, e):
            return ev.cells[(m, r, "clean" if e == 0 else a, e)].correct

        for a in grads + ["min"]:
            acc = {e: _acc(worst_case({g: cell(g, e) for g in grads}) if a == "min"
                           else cell(a, e)) for e in cfg.eps}
            if a == "min":
                results += _named(accuracy_vanishes(acc, 0.0)[1:], a)
                continue
            xa = attack_inputs(net, a, r, xs, ys, check.large_eps, cfg,
                               cell_seed(cfg.seed, m, r, a, "large"), steps=check.large_steps)
            results += _named(accuracy_vanishes(acc, _acc(score(net, r, xa, ys)[0])), a)
        if not eps_pos or not grads:
            out[(m, r)] = results
            continue
        e_max = max(eps_pos)
        main = "e2e" if "e2e" in grads else grads[0]
        seed = cell_seed(cfg.seed, m, r, main, e_max, 0)
        by_steps = {cfg.steps: _acc(cell(main, e_max)[:n])}
        few = max(1, cfg.steps // 4)
        by_steps[few] = _acc(score(net, r, attack_inputs(net, main, r, xs, ys, e_max, cfg, seed,
                                                         steps=few), ys)[0])
        results += _named(more_steps_never_help(by_steps), f"{main}, steps")
        if check.restarts > cfg.restarts:
            xa = attack_inputs(net, main, r, xs, ys, e_max, cfg, seed, restarts=check.restarts)
            by_restarts = {cfg.restarts: by_steps[cfg.steps],
                           check.restarts: _acc(score(net, r, xa, ys)[0])}
            results += _named(more_steps_never_help(by_restarts), f"{main}, restarts")
        if "transfer" in attacks:
            for e in eps_pos:
                white = worst_case({g: cell(g, e) for g in grads})
                results += _named(blackbox_not_stronger(
                    _acc(white), {"transfer": _acc(cell("transfer", e))}, len(y)), f"eps={e:g}")
        if check.spsa_n > 0:
            k = min(check.spsa_n, len(y))
            xa = _spsa_inputs(net, r, x[:k], y[:k], e_max, check,
                              cell_seed(cfg.seed, m, r, "spsa", e_max))
            white = worst_case({g: cell(g, e_max)[:k] for g in grads})
            results += _named(blackbox_not_stronger(
                _acc(white), {"spsa": _acc(score(net, r, xa, y[:k])[0])}, k), f"eps={e_max:g}")
        k = min(check.repeat_n, len(y))

        def again():
            xa = attack_inputs(net, main, r, x[:k], y[:k], e_max, cfg,
                               cell_seed(cfg.seed, m, r, "repeat"), steps=check.repeat_steps)
            return {"x_adv": xa, "correct": score(net, r, xa, y[:k])[0]}

        results += _named(repeatable(again), main)
        out[(m, r)] = results
        failed = sum(not c.passed for c in results)
        log(f"checks {m}/{r}: {len(results) - failed} passed, {failed} failed")
    return out


def _spsa_inputs(net: CNNF, readout: str, x: Tensor, y: Tensor, eps: float,
                 check: CheckConfig, seed: int) -> Tensor:
    """SPSA's strongest iterate per image (margin loss on the scored readout)."""
    scored = lambda z: net(z, readout=readout)  # noqa: E731
    eps_in = pixel_to_input(eps)
    with torch.no_grad():
        res = spsa(margin_loss(scored), x, y, eps=eps_in, steps=check.spsa_steps,
                   lr=2.5 * eps_in / check.spsa_steps, nb_sample=check.spsa_samples,
                   max_batch_size=check.spsa_samples, predict=scored,
                   generator=torch.Generator().manual_seed(seed))
    return res.x_best
