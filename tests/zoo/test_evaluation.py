"""Tests for zoo.evaluation on tiny DGMs and random data: the attack targets differentiate what
they claim (the e2e target attacks the scored readout), the worst case / paired statistics
agree with per-image references, outputs are written, and runs are deterministic."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dgm import DGM
from dgm import layers as L
from inference import preset
from zoo.attacks import mcnemar_exact, wilson_interval
from zoo.cli import build_parser
from zoo.evaluation import (ATTACKS, TARGETS, CheckConfig, EvalConfig, attack_inputs, bpda_surrogate,
                            build_target, evaluate, fixed_subset, records, run_evaluation,
                            worst_cases)
from zoo.evaluation.runner import cell_seed, score
from zoo.models.cnnf import CNNF


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/zoo/conftest.py


def tiny(cycles: int, mode: str = "exact", norm: str = "none", seed: int = 0) -> CNNF:
    """1×6×6 inputs: conv 3×3 (3 ch) + switch + 2×2 max-pool, dense 27→8 + switch, 3 classes."""
    layers = [L.Conv2d(1, 3, 3, padding=1), L.Switch(3), L.MaxPool(2), L.Flatten(),
              L.Dense(27, 8), L.Switch(8)]
    model = DGM(layers, classes=3, input_shape=(1, 6, 6), norm=norm)
    return CNNF(model, cycles=cycles, options=preset(mode), seed=seed).eval()


def data(n: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 6, 6, generator=g) * 2 - 1, torch.randint(0, 3, (n,), generator=g)


def input_grad(fn, x):
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(xg).sum(), [xg])
    return g


@pytest.mark.parametrize("mode", ["exact", "original"])
@pytest.mark.parametrize("readout", ["last", "avg"])
def test_e2e_targets_attack_the_scored_readout(mode, readout):
    net, (x, y) = tiny(2, mode), data()
    ce = lambda logits: F.cross_entropy(logits, y, reduction="none")  # noqa: E731
    reference = {
        "e2e": lambda z: ce(net(z, readout=readout)),
        "e2e-sum": lambda z: sum(ce(p) for p in net.forward_passes(z)),
        "first": lambda z: ce(net.forward_passes(z, 0)[0]),
    }
    for target, ref in reference.items():
        loss_fn, predict = build_target(net, target, readout)
        torch.testing.assert_close(loss_fn(x, y), ref(x))
        torch.testing.assert_close(input_grad(lambda z: loss_fn(z, y), x), input_grad(ref, x))
        scored = net.first_pass(x) if target == "first" else net(x, readout=readout)
        torch.testing.assert_close(predict(x), scored)


@pytest.mark.parametrize("readout", ["last", "avg"])
def test_bpda_value_is_the_scored_readout(readout):
    net, (x, y) = tiny(3, "original"), data()
    loss_fn, predict = build_target(net, "bpda", readout)
    torch.testing.assert_close(loss_fn(x, y), F.cross_entropy(net(x, readout=readout), y,
                                                              reduction="none"))
    torch.testing.assert_close(predict(x + 0.01), net(x + 0.01, readout=readout))
    assert input_grad(lambda z: loss_fn(z, y), x).abs().sum() > 0


def test_bpda_surrogate_of_a_plain_cnn_is_the_cnn():
    """With no cycles the fixed latents are the CNN's own gates: the surrogate must reproduce
    the CNN's logits and its exact input gradient (a ReLU/max-pool net is locally linear)."""
    net, (x, _) = tiny(0), data()
    value, surrogate = bpda_surrogate(net, x, "last")
    torch.testing.assert_close(value, net(x))
    torch.testing.assert_close(surrogate, net(x))
    w = torch.randn(3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(input_grad(lambda z: bpda_surrogate(net, z, "last")[1] @ w, x),
                               input_grad(lambda z: net(z) @ w, x))


def test_a_cnn_gets_one_gradient_attack_for_every_target():
    net, (x, y) = tiny(0), data()
    cfg = EvalConfig(eps=(0.1,), steps=3, batch_size=5)
    inputs = [attack_inputs(net, t, "last", x, y, 0.1, cfg, seed=3) for t in TARGETS]
    for other in inputs[1:]:
        torch.testing.assert_close(other, inputs[0])


def run_tiny(tmp_path=None, seed=0, resume=False, **overrides):
    models = {"CNN": tiny(0, seed=1), "CNN-F": tiny(2, "original", seed=2)}
    x, y = data(10)
    cfg = EvalConfig(**{**dict(eps=(0.0, 0.1, 0.3), steps=2, batch_size=5, seed=seed,
                               attacks=ATTACKS, transfer_from="CNN", apgd_steps=4,
                               apgd_restarts=2),
                        **overrides})
    if tmp_path is None:
        return models, x, y, evaluate(models, x, y, cfg, keep=len(y), progress=False,
                                      log=lambda s: None)
    check = CheckConfig(n=6, large_steps=3, spsa_n=3, spsa_samples=4, spsa_steps=2,
                        repeat_n=3, repeat_steps=2)
    return models, x, y, run_evaluation(models, x, y, cfg, tmp_path, check=check,
                                        header={"dataset": "tiny"}, strip_n=3,
                                        progress=False, log=lambda s: None, resume=resume)


@pytest.fixture(scope="module")
def tiny_eval():
    torch.set_num_threads(1)
    return run_tiny()


def test_worst_case_and_paired_test_match_per_image_references(tiny_eval):
    models, x, y, ev = tiny_eval
    wc = worst_cases(ev)
    recs = records(ev, {m: n.cycles for m, n in models.items()}, {}, {})
    for (m, r, e), summary in wc.items():
        cols = [c.correct.numpy() for (mm, rr, a, ee), c in ev.cells.items()
                if (mm, rr, ee) == (m, r, e)]
        robust = np.logical_and.reduce(cols)
        assert summary.robust.numpy().tolist() == robust.tolist()
        assert all(summary.accuracy <= c.mean() for c in cols)
        rec = next(d for d in recs if d["kind"] == "worst_case" and d["over"] == "all"
                   and (d["model"], d["readout"], d["eps"]) == (m, r, e))
        assert (rec["lo"], rec["hi"]) == pytest.approx(wilson_interval(robust.sum(), len(y)))
    pgd_only = worst_cases(ev, ("first", "e2e", "e2e-sum"))
    for (m, r, e), summary in pgd_only.items():
        cols = [ev.cells[(m, r, a, e)].correct for a in ("first", "e2e", "e2e-sum")] if e else \
            [ev.cells[(m, r, "clean", e)].correct]
        assert torch.equal(summary.robust, torch.stack(cols).all(0))
    tables = {"all": wc, "first,e2e,e2e-sum": pgd_only}
    for d in (d for d in recs if d["kind"] == "paired_test"):
        table = tables[d["over"]]
        a, b = table[tuple(d["a"]) + (d["eps"],)].robust, table[tuple(d["b"]) + (d["eps"],)].robust
        assert d["b01"] == int((~a & b).sum()) and d["b10"] == int((a & ~b).sum())
        assert d["p_value"] == pytest.approx(mcnemar_exact(a, b)["p_value"])


def test_cells_score_what_they_claim(tiny_eval):
    models, x, y, ev = tiny_eval
    source = ev.cells[("CNN", "last", "first", 0.3)].x_adv
    rescued = 0  # images correct under an attack although wrong on the clean image
    for (m, r, a, e), cell in ev.cells.items():
        net = models[m]
        clean = net(x, readout=r).argmax(1) == y
        assert torch.equal(ev.clean[(m, r)], clean)
        assert cell.pass_correct.shape == (net.cycles + 1, len(y))
        if r == "last":  # the scored readout is the last pass; robust only if right clean
            assert torch.equal(cell.pass_correct[-1] & clean, cell.correct)
        if e > 0:
            assert (cell.x_adv - x).abs().max() <= 2 * e + 1e-6  # pixel -> input units
            attacked = score(net, r, cell.x_adv, y)[0]
            assert torch.equal(attacked & clean, cell.correct)
            rescued += int((attacked & ~clean).sum())
        else:
            assert torch.equal(cell.x_adv, x)
    assert rescued > 0  # the AutoAttack convention mattered here
    transfer = ev.cells[("CNN-F", "last", "transfer", 0.3)]
    assert torch.equal(transfer.correct, score(models["CNN-F"], "last", source, y)[0]
                       & ev.clean[("CNN-F", "last")])
    assert torch.equal(ev.cells[("CNN", "last", "e2e", 0.1)].correct,
                       ev.cells[("CNN", "last", "first", 0.1)].correct)


def test_evaluation_is_deterministic_and_seeded():
    quick = dict(attacks=("first", "e2e"), readouts=("last",), eps=(0.0, 0.1))
    *_, a = run_tiny(seed=0, **quick)
    *_, b = run_tiny(seed=0, **quick)
    *_, c = run_tiny(seed=1, **quick)
    assert a.cells.keys() == b.cells.keys()
    for k in a.cells:
        assert torch.equal(a.cells[k].x_adv, b.cells[k].x_adv)
        assert torch.equal(a.cells[k].correct, b.cells[k].correct)
    k = ("CNN-F", "last", "e2e", 0.1)
    assert not torch.equal(a.cells[k].x_adv, c.cells[k].x_adv)
    s = fixed_subset(100, 20, 5)
    assert np.array_equal(s, fixed_subset(100, 20, 5)) and len(set(s)) == 20
    assert np.all(np.diff(s) > 0) and not np.array_equal(s, fixed_subset(100, 20, 6))


def test_outputs_are_written(tmp_path):
    run_tiny(tmp_path, eps=(0.0, 0.1), readouts=("last",))
    recs = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    kinds = {d["kind"] for d in recs}
    assert {"config", "cell", "worst_case", "paired_test", "check", "repair"} <= kinds
    assert recs[0]["kind"] == "config" and recs[0]["n_examples"] == 10
    checks = [d for d in recs if d["kind"] == "check"]
    names = {d["name"].split("[")[0] for d in checks}
    assert {"accuracy_vanishes_at_large_eps", "more_steps_never_help", "blackbox_not_stronger",
            "repeatable"} <= names
    assert all(d["passed"] for d in checks if d["name"].startswith("repeatable"))
    table = (tmp_path / "table.md").read_text()
    assert "| CNN-F | last | e2e | last |" in table and "McNemar" in table
    pngs = sorted(tmp_path.glob("*.png"))
    assert {p.name for p in pngs} >= {"accuracy_vs_eps.png", "accuracy_over_iterations.png"}
    assert any(p.name.startswith("repair_") for p in pngs)
    for p in pngs:
        assert Image.open(p).size[0] > 100


def test_cli_parses_eval_and_demo_options():
    args = build_parser().parse_args(["eval", "fashion-mnist", "--out", "o", "--eps", "0,0.05",
                                      "--models", "a,x:b=w.safetensors", "--attacks", "e2e"])
    assert args.eps == (0.0, 0.05) and args.models == ("a", "x:b=w.safetensors")
    assert args.attacks == ("e2e",) and args.n_examples == 1000 and args.steps == 40
    demo = build_parser().parse_args(["demo"])
    assert demo.out == "out/demo" and demo.readouts == ("last",)
    assert args.apgd_steps == 100 and args.apgd_restarts == 2
    assert args.cascade == ("apgd-sum", "apgd-dlr")
    assert demo.apgd_restarts == 1 and demo.saturation_n == 16 and demo.saturation_eps == (0.06,)
    strong = build_parser().parse_args(["eval", "--out", "o", "--apgd-steps", "50",
                                        "--apgd-restarts", "3", "--saturation-n", "10",
                                        "--saturation-eps", "0.06,0.1"])
    assert (strong.apgd_steps, strong.apgd_restarts) == (50, 3)
    assert (strong.saturation_n, strong.saturation_eps) == (10, (0.06, 0.1))


def test_cascade_attacks_only_survivors_and_keeps_the_worst_case():
    """A cascaded attack runs on exactly the images every earlier attack left correct (the
    same inputs as attacking that subset directly); skipped images inherit the earlier
    breaking outcome, so the cascaded column is the worst case so far."""
    models, x, y, ev = run_tiny(cascade=("e2e-sum", "bpda"), attacks=TARGETS)
    order, skipped = list(TARGETS), 0
    for (m, r, a, e), cell in ev.cells.items():
        if a not in ("e2e-sum", "bpda") or models[m].cycles == 0:
            continue
        earlier = [ev.cells[(m, r, b, e)] for b in order[:order.index(a)]]
        alive = torch.stack([c.correct for c in earlier]).all(0)
        skipped += int((~alive).sum())
        assert torch.equal(cell.attacked, alive)
        assert not cell.correct[~alive].any()
        assert torch.equal(cell.correct, cell.correct & alive)
        first_broken = [next(c for c in earlier if not c.correct[i]) for i in
                        (~alive).nonzero().squeeze(1).tolist()]
        for i, c in zip((~alive).nonzero().squeeze(1).tolist(), first_broken):
            assert torch.equal(cell.pass_correct[:, i], c.pass_correct[:, i])
        if alive.any():  # the survivors of batch 0 attacked directly, same seed
            s = slice(0, ev.config.batch_size)
            run = alive[s].nonzero().squeeze(1)
            if len(run):
                xa = attack_inputs(models[m], a, r, x[s][run], y[s][run], e, ev.config,
                                   cell_seed(ev.config.seed, m, r, a, e, 0))
                want, _ = score(models[m], r, xa, y[s][run])
                assert torch.equal(cell.correct[s][run], want)
    assert skipped > 0  # the case under test happened
    recs = records(ev, {m: n.cycles for m, n in models.items()}, {}, {})
    for d in (d for d in recs if d["kind"] == "cell"):
        if d["attack"] in ("e2e-sum", "bpda") and models[d["model"]].cycles:
            assert d["value"] == "worst_case_so_far" and d["cascade"]
            assert d["over"] == order[:order.index(d["attack"]) + 1]
        else:
            assert d["value"] == "attack" and d["over"] == [d["attack"]]
    robust = worst_cases(ev)
    for (m, r, e), summary in robust.items():
        if e > 0 and models[m].cycles:
            cols = torch.stack([ev.cells[(m, r, a, e)].correct for a in TARGETS])
            assert torch.equal(summary.robust, cols.all(0))
            assert torch.equal(summary.robust, ev.cells[(m, r, "bpda", e)].correct)


def test_cascade_must_follow_the_first_attack():
    with pytest.raises(ValueError, match="cascade"):
        EvalConfig(attacks=("first", "e2e"), cascade=("first",))
    with pytest.raises(ValueError, match="cascade"):
        EvalConfig(attacks=("first", "e2e"), cascade=("bpda",))


# -- issue 16: nothing lost --------------------------------------------------------------------

def test_each_cell_is_on_disk_when_finished_and_resume_skips_them(tmp_path, monkeypatch):
    """case 4: an evaluation wrote nothing until all of it was done (Ctrl-C after 4 cells left
    an empty folder). Interrupt after 4 computed cells: they are in cells.jsonl; --resume
    computes only the rest and reports exactly what an uninterrupted run reports."""
    import zoo.evaluation.runner as runner
    from backends import ConfigError
    straight = tmp_path / "straight"
    run_tiny(straight, eps=(0.0, 0.1), readouts=("last",), cascade=("e2e-sum",))
    real, scored = runner.score, []

    def counting(*args):
        scored.append(1)
        if len(scored) == 9:           # 2 batches per cell: the 5th computed cell's first batch
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(runner, "score", counting)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run_tiny(out, eps=(0.0, 0.1), readouts=("last",), cascade=("e2e-sum",))
    lines = (out / "cells.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["kind"] == "run" and len(lines) == 1 + 4
    with pytest.raises(ConfigError, match="--resume.*--overwrite"):
        run_tiny(out, eps=(0.0, 0.1), readouts=("last",), cascade=("e2e-sum",))
    with pytest.raises(ConfigError, match="another evaluation.*config"):
        run_tiny(out, eps=(0.0, 0.2), readouts=("last",), cascade=("e2e-sum",), resume=True)
    scored.clear()
    monkeypatch.setattr(runner, "score", lambda *a: scored.append(1) or real(*a))
    run_tiny(out, eps=(0.0, 0.1), readouts=("last",), cascade=("e2e-sum",), resume=True)
    total = sum(1 for ln in (straight / "cells.jsonl").read_text().splitlines()[1:])
    assert len(scored) == 2 * (total - 4)
    strip = lambda recs: [{k: v for k, v in d.items() if k != "seconds"} for d in recs  # noqa
                          if d["kind"] not in ("config", "check")]
    read = lambda p: [json.loads(s) for s in (p / "results.jsonl").read_text().splitlines()]  # noqa
    assert strip(read(out)) == strip(read(straight))


def test_unwritable_out_and_bad_strip_n_fail_before_any_work(tmp_path, monkeypatch):
    """case 4: an unwritable --out failed after all the work; --strip-n 0 crashed at the end."""
    import zoo.evaluation.runner as runner
    from backends import ConfigError
    monkeypatch.setattr(runner, "score", lambda *a: pytest.fail("work was done"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a writable directory"):
        run_tiny(tmp_path / "file" / "out")
    with pytest.raises(ConfigError, match="--strip-n"):
        run_evaluation({"CNN": tiny(0)}, *data(4), EvalConfig(eps=(0.0,)), tmp_path / "o",
                       strip_n=0, progress=False, log=lambda s: None)


def test_strip_positions_take_one_image_per_class_first():
    from zoo.evaluation.repair import strip_positions
    by_class = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])           # a class-sorted subset
    assert strip_positions(by_class, 3).tolist() == [0, 3, 5]
    assert strip_positions(by_class, 5).tolist() == [0, 1, 2, 3, 5]  # then the earliest others
    assert strip_positions(torch.tensor([2, 2, 2, 2]), 3).tolist() == [0, 1, 2]
    assert strip_positions(torch.tensor([1, 0]), 6).tolist() == [0, 1]
    assert strip_positions(torch.tensor([4, 4, 7, 4, 9]), 2).tolist() == [0, 2]


def test_kept_inputs_are_the_chosen_positions_of_the_full_run():
    """Keeping only some positions (cascades included) keeps exactly those rows of the
    attacked inputs an evaluation that keeps every image computes."""
    models, x, y, full = run_tiny(cascade=("e2e-sum", "bpda"), attacks=TARGETS)
    cfg = full.config
    keep = torch.tensor([1, 4, 8])
    part = evaluate(models, x, y, cfg, keep=keep, progress=False, log=lambda s: None)
    assert set(part.cells) == set(full.cells)
    inherited = 0
    for (m, r, a, e), cell in part.cells.items():
        torch.testing.assert_close(cell.x_adv, full.cells[(m, r, a, e)].x_adv[keep], rtol=0,
                                   atol=0)
        assert torch.equal(cell.correct, full.cells[(m, r, a, e)].correct)
        if not cell.cascade:
            continue
        for j, i in enumerate(keep.tolist()):   # skipped: the first breaking attack's input
            if not cell.attacked[i]:
                b = next(b for b in cell.cascade if not part.cells[(m, r, b, e)].correct[i])
                assert torch.equal(cell.x_adv[j], part.cells[(m, r, b, e)].x_adv[j])
                inherited += 1
    assert inherited   # the case under test happened


def test_repair_strips_of_a_class_sorted_subset_show_several_classes(tmp_path, monkeypatch):
    import zoo.evaluation.pipeline as pipeline
    models, (x, y) = {"CNN-F": tiny(2, "original", seed=2)}, data(12)
    order = torch.argsort(y, stable=True)
    x, y = x[order], y[order]                                    # sorted by class
    shown, real = [], pipeline.repair
    monkeypatch.setattr(pipeline, "repair", lambda net, xc, xa: shown.append(xc) or
                        real(net, xc, xa))
    cfg = EvalConfig(eps=(0.0, 0.1), steps=2, batch_size=6, attacks=("first", "e2e"))
    run_evaluation(models, x, y, cfg, tmp_path, check=None, strip_n=3, progress=False,
                   log=lambda s: None)
    assert len(shown) == 2                                       # first and e2e
    rows = [int(torch.nonzero((x == c).flatten(1).all(1))[0]) for c in shown[0]]
    assert len({int(y[i]) for i in rows}) == 3 == len(set(y.tolist()))
