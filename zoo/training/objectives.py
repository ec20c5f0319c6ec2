"""Training objectives as composable terms: discriminative, generative (hard EM), hybrid and
semi-supervised fits of a DGM (issue 15; notation of dgm-math §1.5).

A term maps a batch ``(x (N, …), y (N,))`` to a scalar loss; ``y = -1`` marks an unlabelled
image. An :class:`Objective` is a weighted sum of terms; ``make_objective`` builds the named
ones of ``dgm train --objective``:

* ``ce``           — :class:`CrossEntropy` (today's clean recipe);
* ``generative``   — :class:`Generative` (hard EM on −log p_B / D);
* ``hybrid``       — CE + λ·Generative;
* ``adversarial``  — CNN-F's PGD recipe (``zoo.training.losses.adversarial_loss``).

Semi-supervised learning is any of these on a batch with unlabelled images: CE reads only the
labelled ones; the generative term scores every image, with y = the label where it is known and
inferred otherwise (MAP, marginalised, or under the network's own class posterior: the evidence
lower bound; ``Generative.unlabelled``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Protocol, Sequence

import torch

import inference
from dgm import DGM, State
from inference import class_map_states, evidence_state
from zoo.attacks import ce_loss, pgd
from zoo.models.cnnf import CNNF

from .losses import adversarial_loss, clean_loss

OBJECTIVES = ("ce", "generative", "hybrid", "adversarial")
UNLABELLED = ("map", "lse", "elbo")


@dataclass(frozen=True)
class Batch:
    """One training batch: ``x`` (N, *input_shape), ``y`` (N,) int64 labels (-1 = unlabelled),
    ``generator`` the loop's random source (augmentation, attacks)."""
    x: torch.Tensor
    y: torch.Tensor
    generator: Optional[torch.Generator] = None

    @property
    def labelled(self) -> torch.Tensor:
        return self.y >= 0


class Term(Protocol):
    """A loss term: ``term(net, batch) -> (loss (), parts {name: float})``; optionally
    ``after_step(net)`` runs after each optimiser step (closed-form parameter updates)."""
    name: str

    def __call__(self, net: CNNF, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]: ...


class CrossEntropy:
    """L_CE = (1 / (C+1)) Σ_{c=0..C} mean_{n labelled} −log softmax(s⁽ᶜ⁾(x_n))_{y_n}:
    the cross-entropy of every pass's logits s⁽ᶜ⁾ (pass 0 = the plain CNN, pass c after
    feedback cycle c), averaged over passes. Discriminative: no term of log p."""
    name = "ce"

    def __call__(self, net: CNNF, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        lab = batch.labelled
        if bool(lab.all()):
            return clean_loss(net.forward_passes(batch.x), batch.y), {}
        if not bool(lab.any()):  # (a zero that is still a function of the parameters)
            return sum(p.sum() for p in net.parameters()) * 0.0, {}
        return clean_loss(net.forward_passes(batch.x[lab]), batch.y[lab]), {}


class Generative:
    """Hard EM on the DGM's exactly normalised log joint (model B of dgm-math §1.5):

        L_gen = mean_n −log p_B(x̃_n, h_n, y_n, z_n, t_n) / D,

        log p_B = T_y + Σ_ℓ (T_ℓ^bias + T_ℓ^norm + T_ℓ^trans) + T_gauss + T_obs,

    D = the size of level 0. E-step (no gradient): the alternating-MAP engine for ``cycles``
    cycles with y observed (= the label) for labelled images; for unlabelled ones
    ``unlabelled="map"`` lets the engine infer y (its MAP class) and ``"lse"`` runs one MAP per
    class and uses −logsumexp_y log p_B(x̃, h_y, y, z_y, t_y) / D (the class marginalised,
    K renders per image); ``"elbo"`` uses the same K states and the network's readout
    posterior q = softmax(s(x)) (model G's exact class posterior, §2.2) as the variational
    distribution of y: −[Σ_y q_y log p_B(x̃, h_y, y, z_y, t_y) − Σ_y q_y log q_y] / D, the
    free energy F of §4.4 at q = the CNN's posterior (≤ the "lse" marginal, equal when q is
    the model's own posterior p_B(y | x̃, h, z, t)), differentiated through q as well: the
    CNN is the amortised E-step for y, and the unlabelled images train it toward model B's
    posterior (Kingma et al. 2014's M2 bound, with the CNN as q(y | x)). With 0 E-step
    cycles every class keeps the plain pass's gates (the CNN's bottom-up latents). The state is scored at h = x̃ when τ² = ∞
    (``inference.evidence_state``). M-step: the gradient of L_gen at those fixed latents
    (every term of the table: the Gaussian reconstruction ‖h − g_0‖²/(2σ²), the switches'
    bias terms with their softplus normalisers, the class prior T_y = β_y − logsumexp β — a
    learned prior). Model G's unnormalised J_G is not used: without log Z_G its maximum over
    parameters is unbounded.

    ``learn_sigma2``: after each optimiser step σ² moves toward its closed-form ML estimate
    for the batch's fixed renderings, σ̂² = mean_n ‖h_n − g_0‖² / D (:func:`sigma2_ml`), as
    σ² ← (1 − ρ)σ² + ρσ̂² (ρ = ``sigma2_rate``, a running estimate over batches).
    """
    name = "gen"

    def __init__(self, cycles: int = 1, unlabelled: str = "map", learn_sigma2: bool = False,
                 sigma2_rate: float = 0.1):
        if unlabelled not in UNLABELLED:
            raise ValueError(f"unlabelled must be one of {UNLABELLED}, got {unlabelled!r}")
        if int(cycles) != cycles or cycles < 0:
            raise ValueError(f"cycles must be a non-negative integer, got {cycles}")
        if learn_sigma2 and unlabelled != "map":
            raise ValueError("learn_sigma2 needs one state per image (unlabelled='map')")
        if not 0.0 < sigma2_rate <= 1.0:
            raise ValueError(f"sigma2_rate must be in (0, 1], got {sigma2_rate}")
        self.cycles, self.unlabelled = int(cycles), unlabelled
        self.learn_sigma2, self.sigma2_rate = learn_sigma2, sigma2_rate
        self._sigma2_hat: Optional[float] = None

    def e_step(self, net: CNNF, batch: Batch) -> list[tuple[torch.Tensor, Any, list[State]]]:
        """The latents, without gradient: a list of groups ``(rows, x̃, states)``; ``states``
        has one state (labelled images, or MAP y) or K (``"lse"``)."""
        model, params, lab = net.dgm, net.params(), batch.labelled
        groups = []
        with torch.no_grad():
            for rows, observed in ((lab.nonzero()[:, 0], True), ((~lab).nonzero()[:, 0], False)):
                if len(rows) == 0:
                    continue
                x = batch.x[rows]
                if not observed and self.unlabelled != "map":
                    x_obs, states = class_map_states(model, params, x, cycles=self.cycles,
                                                     options=net.options)
                else:
                    res = inference.alternating_map(
                        model, params, x, cycles=self.cycles, options=net.options,
                        record="none", renderings=False, converged=False,
                        observed_y=batch.y[rows] if observed else None)
                    x_obs, states = res.x_obs, [evidence_state(model, res.x_obs, res.state)]
                groups.append((rows, x_obs, states))
        return groups

    def m_step_loss(self, net: CNNF, groups, n: int,
                    log_q: Optional[torch.Tensor] = None) -> torch.Tensor:
        """L_gen at the E-step's fixed latents ``groups`` (``e_step``) for a batch of ``n``
        images: −Σ_groups Σ_rows logsumexp_states log p_B / (D·n), differentiable in the
        parameters (a single state per group: the log joint itself); with ``log_q`` (rows of
        the group with K states × K, log-probabilities) that group's rows contribute
        Σ_y q_y (log p_B,y − log q_y) instead of the logsumexp ("elbo")."""
        model, params = net.dgm, net.params()
        dim = math.prod(model.level0_shape)
        total = None
        for _, x_obs, states in groups:
            joints = torch.stack([model.log_joint(params, x_obs, s, "B",
                                                  observed="level0").total for s in states], -1)
            if log_q is not None and len(states) > 1:
                part = (log_q.exp() * (joints - log_q)).sum()
            else:
                part = torch.logsumexp(joints, -1).sum()
            total = part if total is None else total + part
        return -total / (dim * n)

    def __call__(self, net: CNNF, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        groups = self.e_step(net, batch)
        log_q = None
        if self.unlabelled == "elbo" and not bool(batch.labelled.all()):
            x_unl = batch.x[~batch.labelled]
            log_q = torch.log_softmax(net.readout_logits(net.forward_passes(x_unl)), -1)
        loss = self.m_step_loss(net, groups, len(batch.y), log_q)
        parts = {"gen": float(loss.detach())}
        if self.learn_sigma2:
            with torch.no_grad():
                sq = sum(sigma2_ml(net.dgm, net.params(), x_obs, states[0]) * len(rows)
                         for rows, x_obs, states in groups)
            self._sigma2_hat = parts["sigma2_ml"] = float(sq) / len(batch.y)
        return loss, parts

    def after_step(self, net: CNNF) -> None:
        if self.learn_sigma2 and self._sigma2_hat is not None:
            rho = self.sigma2_rate
            net.dgm.sigma2 = (1 - rho) * net.dgm.sigma2 + rho * max(self._sigma2_hat, 1e-6)


def sigma2_ml(model: DGM, params, x_obs, state: State) -> float:
    """σ̂² = mean_n ‖h_n − g_0(y_n, z_n, t_n)‖² / D: the σ² that maximises Σ_n T_gauss (and so
    log p_B, in which σ² enters only there) for fixed renderings; h = x̃ when τ² = ∞."""
    state = evidence_state(model, x_obs, state)
    g0, _ = model.render(params, state, keep_ghat=())
    d = (state.h - g0).reshape(state.batch_size, -1)
    return float((d * d).sum(-1).mean()) / d.shape[1]


class Adversarial:
    """CNN-F's adversarial recipe (original-cnnf.md §C.1): PGD on the first pass, then
    ``adversarial_loss`` (CE at every pass of the clean and attacked batches + λ_r·MSE of
    the attacked renderings to the clean level-0 features). Labelled batches only."""
    name = "adv"

    def __init__(self, eps: float, step_size: float, steps: int, clean_weight: float,
                 mse_weight: float):
        self.eps, self.step_size, self.steps = eps, step_size, steps
        self.clean_weight, self.mse_weight = clean_weight, mse_weight

    def __call__(self, net: CNNF, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        if not bool(batch.labelled.all()):
            raise ValueError("the adversarial objective needs every label")
        for p in net.parameters():
            p.requires_grad_(False)
        try:
            x_adv = pgd(ce_loss(net.first_pass), batch.x, batch.y, eps=self.eps,
                        step_size=self.step_size, steps=self.steps,
                        generator=batch.generator).x_final
        finally:
            for p in net.parameters():
                p.requires_grad_(True)
        return adversarial_loss(net.run(batch.x), net.run(x_adv), batch.y,
                                clean_weight=self.clean_weight, mse_weight=self.mse_weight)


class Objective:
    """L = Σ_i w_i · L_i over ``terms`` = [(w_i, term_i)]; ``parts`` collects every term's
    parts and, with more than one term, each term's value under its name."""

    def __init__(self, terms: Sequence[tuple[float, Term]]):
        if not terms:
            raise ValueError("an objective needs at least one term")
        self.terms = list(terms)

    def __call__(self, net: CNNF, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        loss, parts = None, {}
        for weight, term in self.terms:
            value, more = term(net, batch)
            parts.update(more)
            if len(self.terms) > 1:
                parts.setdefault(term.name, float(value.detach()))
            value = value if weight == 1.0 else weight * value
            loss = value if loss is None else loss + value
        return loss, parts

    def after_step(self, net: CNNF) -> None:
        for _, term in self.terms:
            hook = getattr(term, "after_step", None)
            if hook is not None:
                hook(net)


def make_objective(name: str, *, gen_weight: float = 1.0, estep_cycles: int = 1,
                   unlabelled: str = "map", learn_sigma2: bool = False,
                   adversarial: Optional[dict[str, Any]] = None) -> Objective:
    """The named objective of ``dgm train --objective NAME`` (see the module docstring).

    ``gen_weight`` is λ of the hybrid (and the generative term's weight alone);
    ``adversarial``: the ``Adversarial`` arguments for ``name="adversarial"``.
    """
    if name not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {name!r}")
    if name == "ce":
        return Objective([(1.0, CrossEntropy())])
    if name == "adversarial":
        return Objective([(1.0, Adversarial(**(adversarial or {})))])
    gen = Generative(estep_cycles, unlabelled, learn_sigma2)
    if name == "generative":
        return Objective([(gen_weight, gen)])
    return Objective([(1.0, CrossEntropy()), (gen_weight, gen)])
