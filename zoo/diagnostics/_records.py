"""Per-step likelihood records of alternating-MAP inference (dgm-math §1.5, §4.3, §4.6).

``trace`` runs the engine with ``record="step"`` on a batch and turns every single step into one
``StepRecord`` per image: the log joint log p_G(x̃, h, y, z, t) (up to log Z_G, i.e. the
``DGM.log_joint`` total) with its per-term breakdown (class prior, each switch's ⟨b⊙z, ĝ⟩,
‖g_0‖²/(2σ²), Gaussian, observation), the engine's objective J_G, the class, the h-step distance
‖h_new − h_old‖, whether the state changed and whether the log joint *decreased* beyond the
tolerance of §4.6. One ``RunRecord`` per image sums the run up: prediction of every pass, the
cycle at which a fixed point was reached, and the G (gated logits) vs B (corrected logits) class.

Requirements: backend-generic (numpy or torch arrays); records hold plain Python values only.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

import inference
from dgm import DGM, LogJoint, State
from inference import Options, Result

# dgm-math §4.6: "non-decreasing" means new ≥ old − rtol·(1 + Σ|terms|)
RTOL = {"float64": 1e-10, "float32": 1e-4}


@dataclass(frozen=True)
class StepRecord:
    """The state right after one step of one image's run.

    ``step`` counts recorded steps (0 = the initial plain-CNN state); ``name`` is "init", "h",
    a switch/pool site path (the z/t block of that layer) or "y". ``h_dist`` is ‖h_new − h_old‖,
    ``units_changed`` the number of switch (z) and pool-position (t) entries this step changed,
    ``changed`` whether anything (h, y, z, t) changed. ``decrease`` is
    max(0, previous log joint − this one) and ``decreased`` says whether it exceeds the tolerance.
    """
    image: int
    label: int
    variant: str
    condition: str
    step: int
    cycle: int
    name: str
    log_joint: float
    terms: dict[str, float]
    objective: float
    pred: int
    h_dist: float
    units_changed: int
    changed: bool
    decrease: float
    decreased: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunRecord:
    """One image's whole run: ``preds`` is the arg-max class of every pass (pass 0 = the plain
    CNN); ``fixed_point`` the number of cycles after which nothing changed any more (None: not
    reached within ``cycles_run``); ``pred_g_*``/``pred_b_*`` the arg-max of the gated logits
    s(h; z, t) and of model B's corrected logits s − R (§2.2) at the initial and final state."""
    image: int
    label: int
    variant: str
    condition: str
    preds: list[int]
    cycles_run: int
    fixed_point: int | None
    log_joint_init: float
    log_joint_final: float
    pred_g_init: int
    pred_g_final: int
    pred_b_init: int
    pred_b_final: int
    decreases: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Trace:
    """What ``trace`` returns: the records, the engine's ``Result`` (for figures) and the G/B
    classes of the initial state (reusable by other variants on the same input)."""
    steps: list[StepRecord]
    runs: list[RunRecord]
    result: Result = field(repr=False)
    init_classes: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)


def to_numpy(a) -> np.ndarray:
    """A numpy copy of a numpy array or torch tensor (detached, on the CPU)."""
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def tolerance(log_joint: LogJoint, dtype_name: str) -> np.ndarray:
    """§4.6 slack per example: rtol·(1 + Σ|terms|), rtol by precision (float64/float32)."""
    rtol = RTOL.get(dtype_name, RTOL["float32"])
    size = 1.0 + sum(np.abs(to_numpy(v)) for v in log_joint.terms.values())
    return rtol * size


def step_records(model: DGM, params: Mapping[str, Any], result: Result, labels, *,
                 variant: str, condition: str, image_ids: Sequence[int] | None = None
                 ) -> list[StepRecord]:
    """One ``StepRecord`` per (recorded step, image) of ``result`` (``record="step"``).

    Args:
        result: an engine run recorded with ``record="step"``; its ``x_obs`` is x̃.
        labels: true classes (N,); image_ids: global image indices (default 0..N-1).
    """
    steps = result.trajectory.steps
    if not steps or any(s.name == "cycle" for s in steps) or (len(steps) == 1 and result.cycles):
        raise ValueError("result must come from alternating_map(..., record='step'); its "
                         "trajectory has no per-step states")
    labels = to_numpy(labels).astype(int)
    n = len(labels)
    ids = list(range(n)) if image_ids is None else [int(i) for i in image_ids]
    dtype = str(result.x_obs.dtype).replace("torch.", "")
    out: list[StepRecord] = []
    prev_state: State | None = None
    prev_total = None
    for k, step in enumerate(steps):
        lj = model.log_joint(params, result.x_obs, step.state, "G", observed="level0")
        total = to_numpy(lj.total)
        terms = {name: to_numpy(v) for name, v in lj.terms.items()}
        objective = to_numpy(step.objective)
        pred = to_numpy(step.state.y).astype(int)
        if prev_state is None:
            h_dist = np.zeros(n)
            units = np.zeros(n, dtype=int)
            changed = np.zeros(n, dtype=bool)
            drop = np.zeros(n)
            decreased = np.zeros(n, dtype=bool)
        else:
            dh = to_numpy(step.state.h - prev_state.h).reshape(n, -1)
            h_dist = np.sqrt((dh ** 2).sum(-1))
            units = changed_units(prev_state, step.state)
            changed = (h_dist > 0) | (units > 0) | (pred != to_numpy(prev_state.y))
            drop = np.maximum(prev_total - total, 0.0)
            decreased = drop > tolerance(lj, dtype)
        for i in range(n):
            out.append(StepRecord(
                image=ids[i], label=int(labels[i]), variant=variant, condition=condition,
                step=k, cycle=int(step.cycle), name=step.name, log_joint=float(total[i]),
                terms={name: float(v[i]) for name, v in terms.items()},
                objective=float(objective[i]), pred=int(pred[i]), h_dist=float(h_dist[i]),
                units_changed=int(units[i]), changed=bool(changed[i]), decrease=float(drop[i]),
                decreased=bool(decreased[i])))
        prev_state, prev_total = step.state, total
    return out


def gb_classes(model: DGM, params: Mapping[str, Any], state: State) -> tuple[np.ndarray, ...]:
    """Arg-max classes (N,) of model G (gated logits s) and model B (corrected logits s − R,
    dgm-math §2.2, K renderings) at ``state``."""
    return (to_numpy(model.logits(params, state)).argmax(-1),
            to_numpy(model.corrected_logits(params, state)).argmax(-1))


def run_records(model: DGM, params: Mapping[str, Any], result: Result, labels,
                steps: Sequence[StepRecord], *, variant: str, condition: str,
                image_ids: Sequence[int] | None = None,
                init_classes: tuple[np.ndarray, np.ndarray] | None = None) -> list[RunRecord]:
    """One ``RunRecord`` per image from ``result`` and its ``steps`` (from ``step_records``).

    ``init_classes``: ``gb_classes`` of the initial state when already known (every variant
    starts from the same plain-CNN state of an input; B costs K renderings)."""
    labels = to_numpy(labels).astype(int)
    n = len(labels)
    ids = list(range(n)) if image_ids is None else [int(i) for i in image_ids]
    preds = np.stack([to_numpy(s).argmax(-1) for s in result.logits], 0)  # (passes, N)
    g_init, b_init = init_classes or gb_classes(model, params, result.trajectory.steps[0].state)
    g_final, b_final = gb_classes(model, params, result.state)
    by_image: dict[int, list[StepRecord]] = {}
    for r in steps:
        by_image.setdefault(r.image, []).append(r)
    out = []
    for i in range(n):
        recs = sorted(by_image[ids[i]], key=lambda r: r.step)
        out.append(RunRecord(
            image=ids[i], label=int(labels[i]), variant=variant, condition=condition,
            preds=[int(p) for p in preds[:, i]], cycles_run=int(result.cycles),
            fixed_point=fixed_point_cycle(recs, int(result.cycles)),
            log_joint_init=recs[0].log_joint, log_joint_final=recs[-1].log_joint,
            pred_g_init=int(g_init[i]), pred_g_final=int(g_final[i]),
            pred_b_init=int(b_init[i]), pred_b_final=int(b_final[i]),
            decreases=sum(r.decreased for r in recs)))
    return out


def changed_units(old: State, new: State) -> np.ndarray:
    """Per example, how many z and t entries differ between two states (N,) int."""
    n = old.batch_size
    total = np.zeros(n, dtype=int)
    for before, after in ((old.z, new.z), (old.t, new.t)):
        for key in before:
            total += to_numpy(before[key] != after[key]).reshape(n, -1).sum(-1)
    return total


def fixed_point_cycle(records: Sequence[StepRecord], cycles_run: int) -> int | None:
    """Cycles after which nothing changed any more: the last cycle with a changing step, if a
    later cycle confirmed it (changed nothing); None when the last cycle run still changed."""
    changing = [r.cycle for r in records if r.changed and r.cycle > 0]
    last = max(changing, default=0)
    return last if last < cycles_run else None


def trace(model: DGM, params: Mapping[str, Any], x, labels, *, options: Options | None = None,
          variant: str = "exact", condition: str = "clean", cycles: int = 5,
          until_fixed_point: bool = True, observed: str = "input",
          image_ids: Sequence[int] | None = None,
          init_classes: tuple[np.ndarray, np.ndarray] | None = None) -> Trace:
    """Run the engine on ``x`` recording every single step, and build the records.

    Args:
        model, params: the DGM (use a finite τ² so that the objective depends on x) and its
            parameters (float64 makes the decrease test meaningful, §4.6).
        x: (N, *model.input_shape) batch (or x̃ when ``observed="level0"``); labels: (N,).
        options: engine options (exact by default; ``Options.original()`` for CNN-F).
        variant, condition: names copied into the records ("exact"/"original", "clean"/"pgd").
        cycles: the number of cycles, or the maximum with ``until_fixed_point``.
        init_classes: G and B classes of the plain state of ``x`` (``Trace.init_classes`` of
            another variant's trace on the same ``x``); computed when None.
    Returns:
        ``Trace(steps, runs, result)``.
    Example:
        >>> tr = trace(model, params, x, y, options=Options.original(), variant="original")
        >>> sum(r.decreased for r in tr.steps)      # decreases of the log joint
    """
    result = inference.alternating_map(model, params, x, cycles=cycles, options=options,
                                       until_fixed_point=until_fixed_point, record="step",
                                       observed=observed)
    steps = step_records(model, params, result, labels, variant=variant, condition=condition,
                         image_ids=image_ids)
    init_classes = init_classes or gb_classes(model, params, result.trajectory.steps[0].state)
    runs = run_records(model, params, result, labels, steps, variant=variant,
                       condition=condition, image_ids=image_ids, init_classes=init_classes)
    return Trace(steps=steps, runs=runs, result=result, init_classes=init_classes)
