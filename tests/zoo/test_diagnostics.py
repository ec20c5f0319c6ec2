"""Likelihood diagnostics (issue 6): the records against the engine and the closed-form log joint,
decrease detection (planted), summary statistics against hand counts, the CLI on synthetic data."""
import json
import math

import numpy as np
import pytest
import torch

from dgm import DGM
from dgm import layers as L
from inference import Result, Step, Trajectory, alternating_map
from zoo.cli import main
from zoo.diagnostics import (VARIANTS, RunRecord, StepRecord, diagnose, fixed_point_cycle,
                             format_summary, step_records, summarize, trace)
from zoo.models import CNNF


def tiny_model(tau2: float = 0.5) -> DGM:
    return DGM([L.Conv2d(1, 2, 3, padding=1), L.Switch(2), L.MaxPool(2), L.Flatten(),
                L.Dense(2 * 2 * 2, 5), L.Switch(5)], classes=3, sigma2=1.0, tau2=tau2,
               input_shape=(1, 4, 4))


def tiny_net() -> CNNF:
    """The CLI's ``package.module:factory`` hook for the smoke test."""
    return CNNF(tiny_model(math.inf), cycles=2, seed=1)


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    model = tiny_model()
    params = model.init("torch", seed=3, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((6, 1, 4, 4), generator=gen, dtype=torch.float64) * 2 - 1
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    return model, params, x, y


@pytest.fixture(scope="module")
def traces(setup):
    model, params, x, y = setup
    return {name: trace(model, params, x, y, options=VARIANTS[name], variant=name, cycles=6)
            for name in ("exact", "original", "guarded")}


def test_terms_sum_to_total_and_match_the_engine_objective(traces):
    for tr in traces.values():
        by_image = {}
        for r in tr.steps:
            assert sum(r.terms.values()) == pytest.approx(r.log_joint, rel=1e-12, abs=1e-9)
            by_image.setdefault(r.image, []).append(r.log_joint - r.objective)
        # log p_G + log Z_G − J_G is a parameter-only constant (dgm-math §1.5): state-free
        for diffs in by_image.values():
            assert np.ptp(diffs) < 1e-9 * (1 + abs(diffs[0]))


def test_records_cover_every_step_and_image(setup, traces):
    model, _, x, _ = setup
    tr = traces["exact"]
    n_steps = len(tr.result.trajectory.steps)
    assert len(tr.steps) == n_steps * len(x)
    assert {r.name for r in tr.steps} >= {"init", "h", "y"} | set(model.switch_sites)
    # each step moves only its own block: h-steps move h, z/t steps switches/positions
    assert all(r.h_dist == 0.0 for r in tr.steps if r.name != "h")
    assert all(r.units_changed == 0 for r in tr.steps if r.name in ("init", "h", "y"))
    assert any(r.units_changed > 0 for r in tr.steps)


def test_step_records_need_a_per_step_trajectory(setup):
    model, params, x, y = setup
    for record in ("none", "cycle"):
        res = alternating_map(model, params, x, cycles=2, record=record)
        with pytest.raises(ValueError, match="record='step'"):
            step_records(model, params, res, y, variant="exact", condition="clean")


def test_exact_and_guarded_never_decrease(traces):
    for name in ("exact", "guarded"):
        assert not any(r.decreased for r in traces[name].steps), name


def test_planted_decrease_is_detected(setup, traces):
    model, params, x, y = setup
    result = traces["exact"].result
    steps = list(result.trajectory.steps)
    k = 3
    bad = steps[k].state.replace(h=steps[k].state.h + 2.0)  # far from x̃ and g_0: J drops
    planted = Step(steps[k].cycle, "planted", model.objective(params, result.x_obs, bad), bad.y,
                   bad)
    traj = Trajectory(steps[:k + 1] + [planted] + steps[k + 1:])
    res = Result(state=result.state, logits=result.logits, states=result.states,
                 trajectory=traj, cycles=result.cycles, converged=result.converged,
                 x_obs=result.x_obs)
    recs = step_records(model, params, res, y, variant="exact", condition="clean")
    flagged = {(r.step, r.image) for r in recs if r.decreased}
    assert flagged == {(k + 1, i) for i in range(len(x))}
    before = {r.image: r.log_joint for r in recs if r.step == k}
    for r in recs:
        if r.step == k + 1:
            assert r.decrease == pytest.approx(before[r.image] - r.log_joint)
            assert r.h_dist == pytest.approx(2.0 * math.sqrt(bad.h[0].numel()))  # ‖2·1‖


def test_fixed_point_matches_engine_states(traces):
    tr = traces["exact"]
    assert bool(tr.result.converged.all())
    for run in tr.runs:
        fp = run.fixed_point
        assert fp is not None and fp < run.cycles_run
        i = run.image
        at_fp, last = tr.result.states[fp], tr.result.states[-1]
        assert torch.equal(at_fp.h[i], last.h[i]) and int(at_fp.y[i]) == int(last.y[i])
        if fp > 0:  # the cycle before it still changed something
            prev = tr.result.states[fp - 1]
            changed = not torch.equal(prev.h[i], at_fp.h[i]) or int(prev.y[i]) != int(at_fp.y[i])
            changed |= any(not torch.equal(prev.z[p][i], at_fp.z[p][i]) for p in prev.z)
            changed |= any(not torch.equal(prev.t[p][i], at_fp.t[p][i]) for p in prev.t)
            assert changed


def _step(image, step, cycle, name, lj, decreased=False, changed=True, units=0):
    return StepRecord(image=image, label=0, variant="v", condition="c", step=step, cycle=cycle,
                      name=name, log_joint=lj, terms={"a": lj}, objective=lj, pred=0, h_dist=0.0,
                      units_changed=units, changed=changed, decrease=1.0 if decreased else 0.0,
                      decreased=decreased)


def _run(image, label, preds, fp, g=(0, 0), b=(0, 0)):
    return RunRecord(image=image, label=label, variant="v", condition="c", preds=list(preds),
                     cycles_run=3, fixed_point=fp, log_joint_init=0.0,
                     log_joint_final=float(image), pred_g_init=g[0], pred_g_final=g[1],
                     pred_b_init=b[0], pred_b_final=b[1])


def test_summary_against_hand_counts():
    steps = [_step(0, 0, 0, "init", 0), _step(0, 1, 1, "h", 1),
             _step(0, 2, 1, "3", 0.5, True, units=4), _step(0, 3, 1, "y", 0.5),
             _step(1, 0, 0, "init", 0), _step(1, 1, 1, "h", -1, True), _step(1, 2, 1, "3", 0),
             _step(1, 3, 1, "y", 0)]
    runs = [_run(0, 1, [0, 1], 1), _run(1, 1, [1, 0, 0], None, g=(1, 2), b=(1, 0)),
            _run(2, 1, [0, 2], 2), _run(3, 1, [1, 1], 1, b=(2, 0))]
    (row,) = summarize(steps, runs)
    assert row["steps"] == 6 and row["decreased_frac"] == pytest.approx(2 / 6)
    assert row["decreased_by_kind"] == {"h": 0.5, "z/t": 0.5, "y": 0.0}
    assert row["images_with_decrease_frac"] == 1.0 and row["max_decrease"] == 1.0
    assert (row["flip_frac"], row["flip_toward_frac"], row["flip_away_frac"],
            row["flip_other_frac"]) == (0.75, 0.25, 0.25, 0.25)
    # shorter runs sit at their fixed point: their last prediction carries forward
    assert row["accuracy_by_pass"] == [0.5, 0.5, 0.5]
    assert row["fixed_point_frac"] == 0.75 and row["fixed_point_median"] == 1.0
    assert row["gb_disagree_init"] == 0.25 and row["gb_disagree_final"] == 0.25
    assert row["delta_log_joint_median"] == 1.5
    table = format_summary([row])
    assert row["last_cycle_units_median"] == 2.0  # last cycle: 4 units (image 0), 0 (image 1)
    assert table.count("\n") == 3 and "| v | c | 4 | 6 | 33.3%" in table


def test_fixed_point_cycle_rule():
    recs = [_step(0, 0, 0, "init", 0, changed=False), _step(0, 1, 1, "h", 1),
            _step(0, 2, 2, "h", 1, changed=False)]
    assert fixed_point_cycle(recs, 2) == 1
    assert fixed_point_cycle(recs[:2], 1) is None


def test_diagnose_pgd_and_examples(setup):
    model, params, x, y = setup
    d = diagnose(model, params, x, y, variants=("exact", "original"), cycles=3, batch_size=4,
                 eps=0.3, step_size=0.1, pgd_steps=2, keep_examples=2, progress=False)
    assert {(r["variant"], r["condition"]) for r in d.summary} == \
        {(v, c) for v in ("exact", "original") for c in ("clean", "pgd")}
    assert len(d.runs) == 4 * len(x) and sorted({r.image for r in d.runs}) == list(range(6))
    ex = d.examples[("exact", "pgd")]
    assert ex.x.shape == (2, 1, 4, 4) and np.abs(ex.x - x[:2].numpy()).max() <= 0.3 + 1e-12
    assert not any(r.decreased for r in d.steps if r.variant == "exact")


def test_cli_smoke_on_synthetic_data(tmp_path):
    out = tmp_path / "diag"
    rc = main(["diagnose", "tests.zoo.test_diagnostics:tiny_net", "--data", "synthetic",
               "--n-images", "5", "--batch-size", "3", "--cycles", "2", "--pgd-steps", "1",
               "--dtype", "float64", "--strip-n", "2", "--no-progress", "--out", str(out),
               "--variants", "exact,guarded"])
    assert rc == 0
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert len(runs) == 5 * 2 * 2
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    assert not any(s["decreased"] for s in steps)
    assert "| exact | clean | 5 |" in (out / "summary.md").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["tau2"] == pytest.approx(1 / 9)
    for name in ("log_joint", "terms", "accuracy", "templates", "repair_exact_pgd"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000


def test_numpy_and_torch_records_agree(setup, traces):
    model, params, x, y = setup
    params_np = {k: v.numpy() for k, v in params.items()}
    tr_np = trace(model, params_np, x.numpy(), y.numpy(), options=VARIANTS["exact"], cycles=6)
    for a, b in zip(tr_np.steps, traces["exact"].steps, strict=True):
        assert (a.step, a.image, a.name, a.pred, a.units_changed) == \
            (b.step, b.image, b.name, b.pred, b.units_changed)
        assert a.log_joint == pytest.approx(b.log_joint, rel=1e-12, abs=1e-12)
        assert a.h_dist == pytest.approx(b.h_dist, rel=1e-12, abs=1e-12)
    for a, b in zip(tr_np.runs, traces["exact"].runs, strict=True):
        assert (a.preds, a.fixed_point, a.pred_b_init, a.pred_b_final) == \
            (b.preds, b.fixed_point, b.pred_b_init, b.pred_b_final)


def biased_net() -> CNNF:
    """``tiny_net`` with random switch biases and class prior, so that every term of the log
    joint depends on the parameters (at zero biases the switch terms are −log 2 per unit)."""
    net = tiny_net()
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in net.params().items():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return net


SITE_TERM = {"y": "class", "h": "gauss", "x": "obs"}   # program site -> log_joint term


def _reference_per_dim(net: CNNF, x, y, tau2: float, cycles: int) -> dict[str, float]:
    """Mean log p_B / D per term at the exact engine's state (y observed), scored by the
    program interpreter: sites y, z:<p>, t:<p>, h, x ↔ terms class, switch:<p>, pool:<p>,
    gauss, obs; h = x̃ when τ² = ∞."""
    from dgm.program import program_log_joint
    from zoo.diagnostics import with_noise
    model = with_noise(net.dgm, tau2)
    params = {k: v.detach().double() for k, v in net.params().items()}
    res = alternating_map(model, params, x, cycles=cycles, options=VARIANTS["exact"],
                          record="none", observed_y=y)
    state = res.state.replace(h=res.x_obs) if math.isinf(tau2) else res.state
    total, tr = program_log_joint(model, params, res.x_obs, state, "B")
    dim = x[0].numel()
    out = {"total": float(total.mean()) / dim}
    for site, value in tr.log_probs().items():
        kind, _, path = site.partition(":")
        term = SITE_TERM.get(site) or {"z": "switch", "t": "pool"}[kind] + ":" + path
        out[term] = float(value.mean()) / dim
    return out


@pytest.mark.parametrize("tau2, cycles", [("inf", 0), ("0.3", 2)])
def test_cli_log_joint_per_dim_equals_the_program_interpreter(tmp_path, capsys, tau2, cycles):
    """``dgm diagnose`` prints and writes the test log joint per dimension per term; each
    number equals the generative program's log density of the same state (an independent
    scorer), per site."""
    import argparse

    from zoo.cli.diagnose import load_data
    out = tmp_path / "diag"
    rc = main(["diagnose", "tests.zoo.test_diagnostics:biased_net", "--data", "synthetic",
               "--n-images", "5", "--batch-size", "3", "--cycles", "1", "--pgd-steps", "1",
               "--conditions", "clean", "--variants", "exact,original", "--tau2", tau2,
               "--log-joint-cycles", str(cycles), "--strip-n", "1", "--no-progress",
               "--out", str(out), "--seed", "2"])
    assert rc == 0
    printed = capsys.readouterr().out
    lj = json.loads((out / "summary.json").read_text())["log_joint"]
    assert (lj["cycles"], lj["tau2"], lj["images"]) == (cycles, float(tau2), 5)
    net = biased_net()
    x, y, _ = load_data(argparse.Namespace(data="synthetic", n_images=5, seed=2),
                        net.dgm.input_shape, net.dgm.classes)
    ref = _reference_per_dim(net, torch.as_tensor(x, dtype=torch.float64),
                             torch.as_tensor(y), float(tau2), cycles)
    got = lj["per_dim"]["exact"]
    assert set(got) == set(ref) and ("obs" in ref) == (tau2 != "inf")
    for term, value in ref.items():
        assert got[term] == pytest.approx(value, rel=1e-10, abs=1e-12), term
    assert set(lj["per_dim"]["original"]) == set(ref)
    md = (out / "summary.md").read_text()
    for text in (md, printed):
        assert "| term | exact | original |" in text
        assert f"| total | {got['total']:.4f} | {lj['per_dim']['original']['total']:.4f} |" \
            in text


def test_cli_log_joint_of_a_model_without_one_is_a_clear_error(tmp_path, capsys):
    rc = main(["diagnose", "torch.nn:Identity", "--data", "synthetic", "--n-images", "2",
               "--out", str(tmp_path / "d")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(lines) == 2, lines
    assert lines[0].startswith("error: torch.nn:Identity is a Identity, not a DGM")
    assert lines[1].startswith("hint: `dgm diagnose --help`")
