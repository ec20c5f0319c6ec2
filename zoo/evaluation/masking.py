"""Gradient-masking checks run in every evaluation (``zoo.attacks.checks`` on our cells).

Per (model, readout) row, on the first ``n`` images of the subset (the "check subset"):

* accuracy → 0 at a large budget (``large_eps`` pixel units, PGD-``large_steps``) for every
  gradient attack, and accuracy non-increasing in ε (every attack and the worst case, whole
  subset);
* more PGD steps (``steps // 4`` vs ``steps``) and more restarts (1 vs ``restarts``) never raise
  accuracy, for the attack on the scored readout ("e2e"; the plain pass for a CNN; the first
  gradient attack that did not run as a cascade when e2e did), at the largest ε;
* black-box attacks not stronger than white-box PGD beyond the Wilson half-width: the transfer
  attack at every ε > 0 (whole subset) and SPSA (margin loss on the scored readout, Adam step
  ``step_scale·ε/spsa_steps``) at the largest ε on the first ``spsa_n`` images, each against the
  per-image worst case of the gradient attacks on the same images;
* repeating an attack (PGD-``repeat_steps`` on the first ``repeat_n`` images) gives identical
  adversarial inputs and predictions;
* for a CNN-F: the attack on the scored readout ("e2e") is not weaker than the attacks that
  follow a surrogate ("first", "bpda") beyond the Wilson half-width, at every ε > 0 (whole
  subset; when e2e ran as a cascade, which holds no per-attack number, or not at all, e2e is
  run for the check on the first ``n`` images and compared there), and the input gradients of the scored readout's cross-entropy are not much
  smaller than the first pass's (median L1 ratio ≥ ``grad_ratio``, clean check subset);
* saturation: the strongest attacks of the row (every APGD attack, ``apgd-sum`` then
  ``apgd-dlr``; else ``e2e-sum`` / ``e2e`` / the first gradient attack) rerun one after the
  other with ``saturation_factor``× their steps and restarts on the images of the first
  ``saturation_n`` that survived every attack, at each ε of ``saturation_eps`` (default: every
  ε > 0), move the worst case by less than ``saturation_tol``.

Every outcome, passed or failed, is returned (and written to results.jsonl by the pipeline).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Mapping

import torch
from torch import Tensor

from zoo.attacks import (CheckResult, accuracy_vanishes, attack_saturated, blackbox_not_stronger,
                         gradients_not_vanishing, margin_loss, more_steps_never_help,
                         pixel_to_input, repeatable, spsa, whitebox_not_weaker, worst_case)
from zoo.models.cnnf import CNNF

from .runner import STRONG, EvalConfig, Evaluation, attack_inputs, cell_seed, score
from .targets import TARGETS, build_target


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
    grad_ratio: float = 0.2
    saturation_n: int = 1000
    saturation_eps: tuple[float, ...] = ()
    saturation_factor: int = 2
    saturation_tol: float = 0.01


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
        grads = [a for a in attacks if a in TARGETS] if not net.is_cnn else \
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
        alone = [a for a in grads if not ev.cells[(m, r, a, e_max)].cascade]  # per-attack cells
        if not alone:
            out[(m, r)] = results
            continue
        main = "e2e" if "e2e" in alone else alone[0]
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
            xa = _spsa_best(net, r, x[:k], y[:k], e_max, check,
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
        if net.cycles:
            results += _surrogate_checks(net, m, r, x, y, ev, eps_pos, check.n)
            results += _gradient_check(net, r, xs, ys, check.grad_ratio)
        for e in (check.saturation_eps or eps_pos) if check.saturation_n > 0 else ():
            results += _saturation(net, m, r, x, y, ev, e, check, log)
        out[(m, r)] = results
        failed = sum(not c.passed for c in results)
        log(f"checks {m}/{r}: {len(results) - failed} passed, {failed} failed")
    return out


def _spsa_best(net: CNNF, readout: str, x: Tensor, y: Tensor, eps: float,
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


def _surrogate_checks(net: CNNF, m: str, r: str, x: Tensor, y: Tensor, ev: Evaluation,
                      eps: list[float], n: int) -> list[CheckResult]:
    """e2e vs the surrogate attacks ("first", "bpda") at every ε > 0: on the whole subset when
    e2e ran on every image, else (e2e cascaded or not among the attacks) with e2e run here on
    the first ``n`` images, compared on those images."""
    out = []
    for e in eps:
        others = {a: ev.cells[(m, r, a, e)].correct for a in ("first", "bpda")
                  if (m, r, a, e) in ev.cells and not ev.cells[(m, r, a, e)].cascade}
        if not others:
            continue
        e2e = ev.cells.get((m, r, "e2e", e))
        if e2e is not None and not e2e.cascade:
            scored = e2e.correct
        else:
            k = min(n, len(y))
            xa = attack_inputs(net, "e2e", r, x[:k], y[:k], e, ev.config,
                               cell_seed(ev.config.seed, m, r, "e2e", e, "check"))
            scored = score(net, r, xa, y[:k])[0] & ev.clean[(m, r)][:k]
            others = {a: c[:k] for a, c in others.items()}
        out += _named(whitebox_not_weaker(_acc(scored), {a: _acc(c) for a, c in others.items()},
                                          len(scored)), f"eps={e:g}")
    return out


def input_gradient(net: CNNF, target: str, readout: str, x: Tensor, y: Tensor) -> Tensor:
    """∇ₓ of the cross-entropy of ``target`` ("e2e": the scored readout; "first": pass 0)."""
    loss_fn, _ = build_target(net, target, readout)
    with torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(xg, y).sum(), [xg])
    return grad


def _gradient_check(net: CNNF, r: str, x: Tensor, y: Tensor, ratio: float) -> list[CheckResult]:
    return gradients_not_vanishing(input_gradient(net, "e2e", r, x, y),
                                   input_gradient(net, "first", r, x, y), ratio,
                                   "gradients_not_vanishing[e2e/first]")


def strongest(attacks: list[str]) -> list[str]:
    """The strongest gradient attacks among ``attacks``: every APGD attack (``STRONG``: they
    differ in their loss, neither dominates), else the first of e2e-sum, e2e, any PGD."""
    strong = [a for a in STRONG if a in attacks]
    if strong:
        return strong
    order = ["e2e-sum", "e2e"] + [a for a in attacks if a in TARGETS]
    return [a for a in order if a in attacks][:1]


def _saturation(net: CNNF, m: str, r: str, x: Tensor, y: Tensor, ev: Evaluation, e: float,
                check: CheckConfig, log: Callable[[str], None]) -> list[CheckResult]:
    """The strongest attacks with ``saturation_factor``× steps and restarts, one after the other,
    on the images of the first ``saturation_n`` that every attack (and every earlier rerun)
    left correct: does the worst case move?"""
    cfg: EvalConfig = ev.config
    attacks = [a for a in strongest(ev.attacks(m, r)) if (m, r, a, e) in ev.cells]
    if not attacks:
        return []
    k = min(check.saturation_n, len(y))
    robust = worst_case({a: c.correct for (mm, rr, a, ee), c in ev.cells.items()
                         if (mm, rr, ee) == (m, r, e)})[:k]
    f = check.saturation_factor
    alive, runs = robust.clone(), []
    for attack in attacks:
        steps = f * (cfg.apgd_steps if attack in STRONG else cfg.steps)
        restarts = f * (cfg.apgd_restarts if attack in STRONG else cfg.restarts)
        idx = alive.nonzero().squeeze(1)
        broken = 0
        for i, start in enumerate(range(0, len(idx), cfg.batch_size)):
            rows = idx[start:start + cfg.batch_size]
            xa = attack_inputs(net, attack, r, x[rows], y[rows], e, cfg,
                               cell_seed(cfg.seed, m, r, attack, e, "saturation", i),
                               steps=steps, restarts=restarts)
            wrong = ~score(net, r, xa, y[rows])[0]
            alive[rows[wrong]] = False
            broken += int(wrong.sum())
        log(f"saturation {m}/{r} eps={e:g}: {attack} ×{f} broke {broken} of {len(idx)} "
            "survivors")
        runs.append(f"{attack} with {steps} steps and {restarts} restarts ({f}×) on the "
                    f"{len(idx)} left, {broken} broken")
    acc = _acc(robust)
    what = (f"on the {int(robust.sum())} images of the first {k} that survived every attack: "
            + "; then ".join(runs))
    return _named(attack_saturated(acc, _acc(alive), check.saturation_tol, what),
                  f"{'+'.join(attacks)}, eps={e:g}")
