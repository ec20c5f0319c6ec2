"""zoo.models.wrn: the WRN CNN-F as a DGM — parameter counts against original-cnnf.md §A.4,
the rendering is the exact adjoint of the gated forward (residual DAG, projections, strides),
the original's nearest head is k² × the adjoint, ``ind`` only re-cuts the network."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import zoo
from backends import WeightsError
from dgm import layers as L
from zoo.convert import recut
from zoo.models.wrn import cnnf_wrn, wrn_blocks, wrn_dgm
from zoo.models.hub import has_weights

torch.set_num_threads(1)


def _count(shapes) -> int:
    return sum(math.prod(s) for s in shapes.values())


def test_wrn40_2_has_the_original_unique_weight_count():
    shapes = wrn_dgm(40, 2, ind=0).param_shapes()
    assert _count(shapes) == 2_240_842
    # the breakdown of §A.4: stem, groups 1-3 (6 blocks each), head biases, fc
    group = lambda g: _count({k: s for k, s in shapes.items()  # noqa: E731
                              if k.startswith("layers.") and
                              1 + 6 * (g - 1) <= int(k.split(".")[1]) <= 6 * g})
    assert shapes["layers.0.weight"] == (16, 3, 3, 3)
    assert [group(g) for g in (1, 2, 3)] == [106_864, 426_720, 1_705_408]
    assert math.prod(shapes["layers.20.bias"]) + shapes["head.bias"][0] == 138
    assert shapes["head.weight"] == (10, 128)
    # unchanged by where the feedback loop starts
    assert _count(wrn_dgm(40, 2, ind=5).param_shapes()) == 2_240_842


def test_structure_projections_and_levels():
    pieces = wrn_blocks(40, 2)
    blocks = [p[0] for p in pieces[1:-1]]
    assert len(blocks) == 18 and all(isinstance(b, L.Residual) for b in blocks)
    assert [i for i, b in enumerate(blocks) if b.projection is not None] == [0, 6, 12]
    assert [b.body[0].stride for b in blocks[::6]] == [1, 2, 2]
    assert wrn_dgm(40, 2, ind=0).level0_shape == (3, 32, 32)
    assert wrn_dgm(40, 2, ind=5).level0_shape == (32, 32, 32)
    assert wrn_dgm(16, 2).level0_shape == (32, 32, 32)  # default ind = n - 1 = 1
    m = wrn_dgm(16, 2, ind=2)
    assert len(m.encoder) == 3 and m.shapes["0.preact.0"] == (32, 32, 32)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="depth"):
        wrn_dgm(15, 2)
    with pytest.raises(ValueError, match="ind"):
        wrn_dgm(16, 2, ind=3)
    with pytest.raises(ValueError, match="widen"):
        wrn_dgm(16, 0)
    with pytest.raises(ValueError, match="head"):
        wrn_dgm(16, 2, head="bilinear")
    with pytest.raises(ValueError, match="mode"):
        cnnf_wrn(depth=10, widen=1, mode="fast")


def _random_params(model, seed):
    rng = np.random.default_rng(seed)
    params = model.init("numpy", seed=seed)
    for k, v in params.items():
        if k.endswith("bias"):
            params[k] = rng.normal(size=v.shape) * 0.3
    return params


@pytest.mark.parametrize("ind", [0, 1])
def test_rendering_is_the_adjoint_of_the_gated_forward(ind):
    """<A M h, q> = <h, g_0(Aᵀq)> at fixed latents and frozen norm scales (float64), where
    A M h = logits(h) − logits(0); with head="nearest", g_0 is 64 × the adjoint's."""
    model = wrn_dgm(10, 1, ind=ind, head="adjoint")
    params = _random_params(model, seed=ind)
    rng = np.random.default_rng(10 + ind)
    x = rng.uniform(-1, 1, size=(2, 3, 32, 32))
    state, _ = model.plain_state(params, model.encode(params, x))
    assert 0.1 < np.mean([z.mean() for z in state.z.values()]) < 0.9  # mixed gates
    h = rng.normal(size=state.h.shape)
    q = rng.normal(size=(2, 10))
    amh = model.logits(params, state, h) - model.logits(params, state, 0 * h)
    g0, _ = model.render(params, state, top=q @ params["head.weight"])
    lhs, rhs = (amh * q).sum(1), (h * g0).reshape(2, -1).sum(1)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9)
    nearest = wrn_dgm(10, 1, ind=ind, head="nearest")
    g0n, _ = nearest.render(params, state, top=q @ params["head.weight"])
    np.testing.assert_allclose(g0n, 64 * g0, rtol=1e-9, atol=1e-12)


def test_ind_only_recuts_the_network():
    """The plain CNN pass is the same function for every feedback level (names re-cut)."""
    base = wrn_dgm(16, 1, ind=0)
    params = _random_params(base, seed=3)
    x = np.random.default_rng(4).uniform(-1, 1, size=(2, 3, 32, 32))
    ref = base.plain_state(params, base.encode(params, x))[1]
    for ind in (1, 2):
        m = wrn_dgm(16, 1, ind=ind)
        p = {recut(k, len(m.encoder)): v for k, v in params.items()}
        np.testing.assert_allclose(m.plain_state(p, m.encode(p, x))[1], ref, rtol=1e-10)


@pytest.mark.parametrize("mode", ["exact", "original"])
def test_torch_module_runs_and_differentiates(mode):
    net = cnnf_wrn(depth=10, widen=1, cycles=1, ind=0, mode=mode,
                   head="nearest" if mode == "original" else "adjoint")
    x = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    passes = net.forward_passes(x)
    assert len(passes) == 2 and passes[-1].shape == (2, 10)
    passes[-1].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with torch.no_grad():
        torch.testing.assert_close(net.first_pass(x), passes[0])


def test_exports_and_registry():
    assert zoo.cnnf_wrn is cnnf_wrn
    names = zoo.list_models()
    for n in ("cnnf_wrn_40_2", "cnn_wrn_40_2", "cnnf_wrn_16_2", "cnn_wrn_16_2"):
        assert n in names
    net = zoo.create_model("cnn_wrn_16_2")
    assert net.cycles == 0 and net.card == {}
    assert sum(p.numel() for p in net.parameters()) == _count(wrn_dgm(16, 2).param_shapes())


def test_wrn40_pretrained_missing_names_the_file_and_the_env(monkeypatch, tmp_path):
    monkeypatch.setenv("DGM_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsError) as err:
        cnnf_wrn(depth=40, widen=2, pretrained=True)
    msg = str(err.value)
    assert "cnnf_wrn_40_2.safetensors" in msg and "$DGM_WEIGHTS_DIR" in msg
    assert "dgm zoo convert" in msg


@pytest.mark.skipif(not has_weights("cnnf_wrn_16_2"), reason="no bundled WRN-16-2 weights")
def test_bundled_wrn16_loads_and_classifies():
    net = cnnf_wrn(depth=16, widen=2, pretrained=True)
    assert net.card["sha256"] and net.card["arch"]["ind"] == 1
    with torch.no_grad():
        logits = net(torch.rand(4, 3, 32, 32) * 2 - 1)
    assert logits.shape == (4, 10) and torch.isfinite(logits).all()


def test_seed_table_layout_and_consistency(tmp_path):
    from zoo.evaluation.cifar10 import COLUMNS, TableConfig, seed_table, write_table
    cnn = cnnf_wrn(depth=10, widen=1, cycles=0, ind=0, seed=1)
    cnnf = cnnf_wrn(depth=10, widen=1, cycles=1, ind=0, seed=1, mode="original")
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1, torch.randint(0, 10, (3,), generator=g)
    config = TableConfig(pgd_steps=2, spsa_steps=1, spsa_samples=2, batch_size=2)
    rows = seed_table(cnn, cnnf, x, y, config, log=lambda s: None)
    assert [(r["model"], r["readout"]) for r in rows] == [
        ("CNN", "last"), ("CNN-F (last)", "last"), ("CNN-F (avg)", "avg")]
    with torch.no_grad():
        clean = [(cnn(x).argmax(1) == y).float().mean(),
                 (cnnf(x, readout="last").argmax(1) == y).float().mean(),
                 (cnnf(x, readout="avg").argmax(1) == y).float().mean()]
    for r, acc in zip(rows, clean):
        assert r["cells"]["clean"]["acc"] == pytest.approx(float(acc))
        attacked = [c for c in COLUMNS[1:-1] if r["cells"][c] is not None]
        assert r["min"] == min(r["cells"][c]["acc"] for c in attacked)
        assert r["worst_case"]["acc"] <= r["min"]
        # the worst case is the per-image AND of the attack cells' outcomes, counted here
        survive = [all(r["cells"][c]["correct"][i] for c in attacked) for i in range(len(y))]
        assert r["worst_case"]["correct"] == [int(v) for v in survive]
    for r in rows[1:]:      # McNemar's discordant pairs, counted independently
        cnn_wc, wc = rows[0]["worst_case"]["correct"], r["worst_case"]["correct"]
        assert r["vs_cnn"]["b01"] == sum(a == 0 and b == 1 for a, b in zip(cnn_wc, wc))
        assert r["vs_cnn"]["b10"] == sum(a == 1 and b == 0 for a, b in zip(cnn_wc, wc))
    assert "vs_cnn" not in rows[0]
    assert rows[0]["cells"]["PGD e2e"] is rows[0]["cells"]["PGD first"]
    assert rows[0]["cells"]["transfer"] is None and rows[1]["cells"]["transfer"] is not None
    text = write_table(rows, tmp_path, config, {})
    header = next(line for line in text.splitlines() if line.startswith("| model"))
    assert header == ("| model | clean | PGD first | PGD e2e | SPSA first | SPSA e2e | transfer "
                      "| min |")
    records = [json.loads(line) for line in (tmp_path / "table.jsonl").read_text().splitlines()]
    assert sum(r["event"] == "row" for r in records) == 3
    assert "exact McNemar p" in text


def test_eps_sweep_runs_on_cifar10_subset(tmp_path, monkeypatch):
    """``dgm eval cifar10`` (the ε sweep) attacks the seeded CIFAR-10 subset the table uses,
    with the WRN pair as default models; its clean cells agree with the nets run here."""
    from tests.zoo.test_data import write_npz
    from zoo.cli import main
    from zoo.data import cifar10
    from zoo.evaluation import fixed_subset
    (tmp_path / "shared").mkdir()
    write_npz(tmp_path / "shared" / "cifar10-jpeg-q75.npz", n=12)
    monkeypatch.setattr(cifar10, "SHARED_DATA_DIR", tmp_path / "shared")
    monkeypatch.delenv("DGM_DATA_DIR", raising=False)
    out = tmp_path / "o"
    code = main(["eval", "cifar10", "--untrained", "--n-examples", "4", "--seed", "3", "--eps",
                 "0,0.03", "--attacks", "first", "--steps", "1", "--no-checks", "--no-progress",
                 "--out", str(out)])
    assert code == 0
    lines = [json.loads(s) for s in (out / "results.jsonl").read_text().splitlines()]
    config = lines[0]
    assert config["dataset"] == "cifar10" and config["models_spec"] == ["cnn_wrn_16_2",
                                                                        "cnnf_wrn_16_2"]
    idx = fixed_subset(12, 4, 3)
    assert config["subset_indices"] == idx.tolist()
    x, y = cifar10.load_cifar10("test")
    x, y = torch.from_numpy(x[idx]), torch.from_numpy(y[idx])
    nets = {m: zoo.create_model(m, pretrained=False) for m in config["models_spec"]}
    for c in (d for d in lines if d["kind"] == "cell" and d["attack"] == "clean"):
        with torch.no_grad():
            logits = nets[c["model"]](x, readout=c["readout"])
        assert c["acc"] == pytest.approx((logits.argmax(1) == y).float().mean().item())


def test_repair_strip_shows_rgb_inputs_in_colour(tmp_path):
    """The strip's input columns are the images themselves (all three channels, mapped from
    [−1, 1] to [0, 1] as H×W×3), not their first channel."""
    pytest.importorskip("matplotlib")
    from zoo.evaluation import figures
    from zoo.evaluation.repair import repair
    net = cnnf_wrn(depth=10, widen=1, cycles=1, ind=1, seed=2, mode="original")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    x_adv = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    rep = repair(net, x, x_adv)
    assert torch.equal(rep.clean, x) and torch.equal(rep.perturbed, x_adv)
    shown = figures._pixels(rep.perturbed[1])
    assert shown.shape == (32, 32, 3)
    np.testing.assert_allclose(shown, (x_adv[1].permute(1, 2, 0).numpy() + 1) / 2, atol=1e-7)
    figures.repair_strip(rep, "t", tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 0
