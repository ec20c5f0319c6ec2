"""Tests for the natural-corruption evaluation (zoo.evaluation.natural, ``dgm eval
--corruptions``) on tiny 16×16 DGMs: every cell against a direct computation (corrupt, then the
engine), repair metrics against the definitions and scikit-image's PSNR/SSIM, the summaries
(mCE, paired differences) against hand computations on per-image outcomes, the fixed-point
setting against per-image engine runs, JSONL written cell by cell, and bad input refused before
any work."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import inference
from backends import DGMError
from dgm import DGM
from dgm import layers as L
from inference import Options
from zoo.attacks import wilson_interval
from zoo.cli import main
from zoo.corruptions import corrupt
from zoo.data import DataError
from zoo.evaluation.natural import NaturalConfig, run_natural, score_cell
from zoo.evaluation.natural_report import paired_difference
from zoo.models.cnnf import CNNF


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/zoo/conftest.py


def tiny(cycles: int, mode: str = "exact", seed: int = 0, channels: int = 1) -> CNNF:
    """channels×16×16 inputs, feedback to the pixels (ind = 0): conv 3×3 (2 ch) + switch +
    2×2 max-pool, dense 128→8 + switch, 3 classes."""
    layers = [L.Conv2d(channels, 2, 3, padding=1), L.Switch(2), L.MaxPool(2), L.Flatten(),
              L.Dense(128, 8), L.Switch(8)]
    model = DGM(layers, classes=3, input_shape=(channels, 16, 16), norm="none")
    options = Options() if mode == "exact" else Options.original()
    return CNNF(model, cycles=cycles, options=options, seed=seed).eval()


def data(n: int = 10, seed: int = 0, channels: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, channels, 16, 16, generator=g) * 2 - 1,
            torch.randint(0, 3, (n,), generator=g))


def read(path):
    return [json.loads(line) for line in open(path)]


CFG = NaturalConfig(corruptions=("gaussian_noise", "occlusion"), severities=(1, 4),
                    batch_size=4, strip_n=3, strips=("occlusion",))


def test_cells_match_a_direct_computation(tmp_path):
    skm = pytest.importorskip("skimage.metrics")
    models = {"cnn": tiny(0), "cnnf": tiny(2, "original", seed=1)}
    x, y = data()
    recs = run_natural(models, x, y, CFG, tmp_path, log=lambda s: None)
    lines = read(tmp_path / "results.jsonl")
    assert lines[0]["kind"] == "config"
    cells = [d for d in lines if d["kind"] == "cell"]
    plan = [("clean", 0)] + [(c, s) for c in CFG.corruptions for s in CFG.severities]
    assert [(d["corruption"], d["severity"], d["model"]) for d in cells] == \
        [(c, s, m) for c, s in plan for m in models]
    assert lines == [json.loads(json.dumps(r)) for r in recs]  # written cell by cell
    x01 = ((x.double() + 1) / 2).numpy()
    for d in cells:
        net = models[d["model"]]
        xc = x if d["corruption"] == "clean" else \
            torch.from_numpy(corrupt(x01, d["corruption"], d["severity"], seed=0) * 2 - 1)
        with torch.no_grad():
            res = inference.alternating_map(net.dgm, net.params(), xc, cycles=net.cycles,
                                            options=net.options, record="none")
        passes = [(p.argmax(1) == y) for p in res.logits]
        assert d["pass_acc"] == pytest.approx([float(p.float().mean()) for p in passes])
        k = int(passes[-1].sum())
        assert d["acc"] == k / len(y) and (d["lo"], d["hi"]) == wilson_interval(k, len(y))
        assert d["pass0_vs_last"]["b01"] == int((~passes[0] & passes[-1]).sum())
        if not net.cycles:
            assert "repair" not in d
            continue
        r = d["repair"]
        f = x.double()  # ind = 0: the feedback level is the pixels
        for c, g in enumerate(res.renderings):
            g = g.double()
            cos = (g * f).flatten(1).sum(1) / (g.flatten(1).norm(dim=1) * f.flatten(1).norm(dim=1))
            rel = (g - f).flatten(1).norm(dim=1) / f.flatten(1).norm(dim=1)
            assert r["cos_render"][c] == pytest.approx(float(cos.mean()), abs=1e-5)
            assert r["rel_l2_render"][c] == pytest.approx(float(rel.mean()), abs=1e-5)
            gc = g.clamp(-1, 1).numpy()
            ps = [skm.peak_signal_noise_ratio(f[i].numpy(), gc[i], data_range=2)
                  for i in range(len(y))]
            ss = [skm.structural_similarity(gc[i], f[i].numpy(), gaussian_weights=True,
                                            sigma=1.5, use_sample_covariance=False,
                                            data_range=2, channel_axis=0)
                  for i in range(len(y))]
            assert r["psnr_render"][c] == pytest.approx(np.mean(ps), abs=1e-3)
            assert r["ssim_render"][c] == pytest.approx(np.mean(ss), abs=1e-4)
        rel_in = ((xc.double() - f).flatten(1).norm(dim=1) / f.flatten(1).norm(dim=1))
        assert r["rel_l2_input"] == pytest.approx(float(rel_in.mean()), abs=1e-5)
        assert r["closer"] == pytest.approx(float((rel < rel_in).double().mean()))
    out = sorted(p.name for p in tmp_path.iterdir())
    assert {"results.jsonl", "table.md", "accuracy_vs_severity.png",
            "accuracy_over_iterations.png", "repair_cnnf_occlusion_s4.png"} <= set(out)
    assert "Does the feedback repair? (cnnf" in (tmp_path / "table.md").read_text()


def test_summaries_match_hand_computations(tmp_path):
    models = {"cnn": tiny(0), "cnnf": tiny(1, seed=2), "cnnf2": tiny(2, "original", seed=3)}
    x, y = data(12, seed=4)
    recs = run_natural(models, x, y, CFG, tmp_path, log=lambda s: None)
    cells = {(d["model"], d["corruption"], d["severity"]): d for d in recs if d["kind"] == "cell"}
    summ = {d["model"]: d for d in recs if d["kind"] == "model"}
    for m in models:
        ce = {c: sum(1 - cells[(m, c, s)]["acc"] for s in CFG.severities)
              / sum(1 - cells[("cnn", c, s)]["acc"] for s in CFG.severities)
              for c in CFG.corruptions}
        assert summ[m]["mce"] == pytest.approx(np.mean(list(ce.values())), nan_ok=True)
        mca = np.mean([cells[(m, c, s)]["acc"] for c in CFG.corruptions for s in CFG.severities])
        assert summ[m]["mean_corruption_acc"] == pytest.approx(mca)
    assert summ["cnn"]["mce"] == pytest.approx(1.0)
    # the pooled paired difference, from per-image outcomes
    x01 = ((x.double() + 1) / 2).numpy()
    net = models["cnnf2"]
    first, last = [], []
    for s in CFG.severities:
        xc = torch.from_numpy(corrupt(x01, "occlusion", s) * 2 - 1)
        with torch.no_grad():
            passes = net.forward_passes(xc)
        first.append(passes[0].argmax(1) == y)
        last.append(passes[-1].argmax(1) == y)
    first, last = torch.cat(first).numpy(), torch.cat(last).numpy()
    claim = next(d for d in recs if d["kind"] == "claim" and d["model"] == "cnnf2"
                 and d["corruption"] == "occlusion")
    n = len(first)
    diff = last.astype(float) - first.astype(float)
    assert claim["delta_acc"] == pytest.approx(diff.mean())
    half = 1.96 * math.sqrt(diff.var() / n)  # the Wald interval of a paired difference
    assert (claim["delta_acc_lo"], claim["delta_acc_hi"]) == \
        pytest.approx((diff.mean() - half, diff.mean() + half))
    assert claim["acc_pass0"] == pytest.approx(first.mean())
    assert paired_difference(3, 1, 10)[0] == pytest.approx(0.2)


@pytest.mark.parametrize("mode", ["exact", "original"])
def test_fixed_point_matches_per_image_runs(tmp_path, mode):
    net = tiny(1, mode, seed=5)
    x, y = data(7, seed=6)
    cfg = NaturalConfig(corruptions=("contrast", "brightness"), severities=(5,), batch_size=3,
                        fixed_point=True, max_cycles=12)  # (one family, cells of any length)
    recs = run_natural({"m": net}, x, y, cfg, tmp_path, log=lambda s: None)
    cell = next(d for d in recs if d["kind"] == "cell" and d["corruption"] == "contrast")
    xc = torch.from_numpy(corrupt(((x.double() + 1) / 2).numpy(), "contrast", 5) * 2 - 1)
    rows, used, converged = [], [], []
    for i in range(len(y)):  # one image at a time: its own fixed point
        with torch.no_grad():
            res = net.run(xc[i:i + 1], cycles=12, until_fixed_point=True, renderings=False)
        rows.append([bool(p.argmax(1) == y[i]) for p in res.logits])
        used.append(int(res.fixed_at[0]) or 12)
        converged.append(bool(res.fixed_at[0] > 0))
    width = max(len(r) for r in rows)
    padded = np.array([r + [r[-1]] * (width - len(r)) for r in rows])
    assert cell["pass_acc"] == pytest.approx(padded.mean(0).tolist())
    assert cell["acc"] == pytest.approx(padded[:, -1].mean())
    fp = cell["fixed_point"]
    assert fp["cycles_mean"] == pytest.approx(np.mean(used)) and fp["cycles_max"] == max(used)
    assert fp["converged"] == pytest.approx(np.mean(converged))


def test_canonical_images_are_used_when_given(tmp_path):
    net = tiny(1, seed=7, channels=3)
    x, y = data(5, seed=8, channels=3)
    fixed = np.full((5, 3, 16, 16), 0.25, dtype=np.float32)
    cfg = NaturalConfig(corruptions=("fog", "contrast"), severities=(2,), strip_n=0)
    recs = run_natural({"m": net}, x, y, cfg, tmp_path, log=lambda s: None,
                       canonical=lambda name, s: fixed if name == "fog" else None)
    cells = {d["corruption"]: d for d in recs if d["kind"] == "cell"}
    assert cells["fog"]["source"] == "canonical" and cells["contrast"]["source"] == "generated"
    with torch.no_grad():
        passes = net.forward_passes(torch.from_numpy(fixed * 2 - 1))
    assert cells["fog"]["pass_acc"] == pytest.approx([float((p.argmax(1) == y).float().mean())
                                                      for p in passes])


def test_bad_input_fails_before_any_work(tmp_path):
    x, y = data(4)
    with pytest.raises(DGMError, match=r"\[-1, 1\]"):
        run_natural({"m": tiny(1)}, x * 3, y, CFG, tmp_path / "a")
    with pytest.raises(DGMError, match="takes inputs"):
        run_natural({"m": tiny(1, channels=3)}, x, y, CFG, tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    with pytest.raises(DGMError, match="unknown name"):
        NaturalConfig(corruptions=("fogg",))
    with pytest.raises(DGMError, match="1..5"):
        NaturalConfig(severities=(6,))


def test_cli_end_to_end_and_errors(tmp_path, capsys):
    pytest.importorskip("zoo.data").load_fashion_mnist("test")  # skip without the data
    out = tmp_path / "o"
    code = main(["eval", "fashion-mnist", "--untrained", "--corruptions", "fog,occlusion",
                 "--severities", "2", "--n-examples", "3", "--out", str(out), "--no-progress",
                 "--strip-n", "2"])
    assert code == 0
    lines = read(out / "results.jsonl")
    assert sum(d["kind"] == "cell" for d in lines) == 2 * 3
    assert lines[0]["dataset"] == "fashion-mnist" and lines[-1]["kind"] == "timing"
    assert "images/s" in capsys.readouterr().out
    for argv, message in ((["--corruptions", "nope"], "unknown name"),
                          (["--corruptions", "fog", "--severities", "9"], "1..5"),
                          (["--corruptions", "fog", "--cycles", "x"], "fixed-point")):
        with pytest.raises(SystemExit):
            main(["eval", "fashion-mnist", "--out", str(tmp_path / "e")] + argv)
        assert message in capsys.readouterr().err
    assert main(["eval", "cifar10", "--corruptions", "fog", "--models", "fashion_cnn",
                 "--untrained", "--out", str(tmp_path / "e"), "--n-examples", "2"]) == 2
    err = capsys.readouterr().err
    assert "takes inputs" in err or "CIFAR-10" in err, err
    assert not (tmp_path / "e").exists()


def test_canonical_labels_must_follow_the_test_order(tmp_path):
    from zoo.cli.eval_corruptions import _canonical
    d = tmp_path / "CIFAR-10-C"
    d.mkdir()
    np.save(d / "labels.npy", np.tile(np.arange(4, dtype=np.uint8), 5))
    np.save(d / "fog.npy", np.zeros((20, 32, 32, 3), dtype=np.uint8))
    directory, read_c = _canonical("cifar10", tmp_path, np.array([1, 2]), torch.tensor([1, 2]))
    assert directory == d and read_c("fog", 3).shape == (2, 3, 32, 32)
    assert read_c("contrast", 3) is None
    with pytest.raises(DataError, match="do not match"):
        _canonical("cifar10", tmp_path, np.array([1, 2]), torch.tensor([2, 1]))


def test_strip_of_a_class_sorted_subset_shows_one_image_per_class():
    net, (x, y) = tiny(2, "original", seed=1), data(12)
    order = torch.argsort(y, stable=True)
    x, y = x[order], y[order]
    res = score_cell(net, x, -x, y, CFG, keep=3)
    firsts = [int((y == c).nonzero()[0]) for c in sorted(set(y.tolist()))]
    assert torch.equal(res.strip.clean, x[firsts]) and torch.equal(res.strip.perturbed,
                                                                   -x[firsts])
