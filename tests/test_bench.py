"""Smoke tests of the benchmark harness (issue 7): the suite runs on a tiny configuration and
writes JSON and markdown; MAC counts match a forward-hook count on the reference CNN; the
reference has the DGM's layer shapes; the peak-memory probe sees a known allocation."""
from __future__ import annotations

import argparse
import json
import math

import pytest
import torch
from torch import nn

from benchmarks import cnnf_macs, interleaved, peak_memory, reference_cnn, run_suite
from benchmarks.suite import Config, to_markdown
from dgm import DGM, layers as L
from zoo.models import CNNF


def tiny_dgm() -> DGM:
    return DGM([L.Conv2d(3, 4, 3, padding=1), L.Norm(), L.Switch(4), L.MaxPool(2),
                L.Flatten(), L.Dense(4 * 4 * 4, 5), L.Switch(5)], classes=3,
               encoder=[L.Conv2d(1, 3, 3, padding=1), L.Switch(3)], input_shape=(1, 8, 8),
               norm="frozen")


def tiny_config() -> Config:
    return Config("tiny", lambda c: CNNF(tiny_dgm(), cycles=c), batch=4, cycles=(0, 2),
                  train_cycles=2, numpy_batch=2, numpy_cycles=2, growth=True, hybrid=True)


def hooked_macs(module: nn.Module, x: torch.Tensor) -> int:
    """Count MACs of every Conv2d/Linear of ``module`` with forward hooks (per image)."""
    total = []

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            total.append(out[0].numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1])
        else:
            total.append(m.in_features * m.out_features)
    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    module(x[:1])
    for h in handles:
        h.remove()
    return sum(total)


def test_reference_shapes_and_macs_match_hooks():
    model = tiny_dgm()
    ref = reference_cnn(model)
    x = torch.zeros(2, 1, 8, 8)
    assert ref(x).shape == (2, 3)
    assert hooked_macs(ref, x) == cnnf_macs(model, 0)["plain"]
    # by hand, per image: encoder conv 1→3 on 8×8: 1·9·3·64 = 1728; conv 3→4 on 8×8:
    # 3·9·4·64 = 6912; dense 64→5: 320; head 5→3: 15. A cycle renders (adjoints: 6912 + 320
    # + 15) and runs the gated forward (6912 + 320 + 15): 14494
    assert cnnf_macs(model, 3) == {"plain": 8975, "cycle": 14494, "total": 8975 + 3 * 14494}


def test_reference_macs_fashion():
    from zoo.models.fashion import fashion_dgm
    model = fashion_dgm(ind=2)
    assert hooked_macs(reference_cnn(model), torch.zeros(1, 1, 28, 28)) == \
        cnnf_macs(model, 0)["plain"]


def test_peak_memory_sees_allocation():
    n = 1 << 20

    def alloc():
        a = torch.ones(n)      # 4 MiB live
        b = a * 2              # 8 MiB live
        del a
        return b.sum()
    peak = peak_memory(alloc)
    assert 2 * 4 * n <= peak <= 2 * 4 * n + 4096


def test_interleaved_reports_medians():
    calls = []
    t = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                    repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert len(t["a"]["times"]) == 3 and t["a"]["median"] >= 0
    with pytest.raises(ValueError):
        interleaved({"a": lambda: None}, repeats=0)


def test_suite_runs_and_writes(tmp_path):
    result = run_suite(threads=1, quick=True, configs=[tiny_config()], repeats=1)
    cfg = result["configs"][0]
    assert set(cfg["inference"]["runs"]) == {0, 2}
    for c, run in cfg["inference"]["runs"].items():
        assert run["gflops"] > 0 and math.isfinite(run["gflops_ratio"])
        assert cfg["memory"]["runs"][c]["peak_bytes"] > 0
    assert cfg["train_clean"]["time_s"] > 0 and cfg["train_adversarial"]["time_s"] > 0
    assert cfg["numpy"]["ratio"] > 0
    hybrid = cfg["hybrid_vs_ce"]
    assert hybrid["ratio"] == pytest.approx(hybrid["hybrid_time_s"] / hybrid["ce_time_s"])
    assert len(cfg["growth"]["vs_cycles"]["time_s"]) == len(cfg["growth"]["vs_cycles"]["cycles"])
    names = [r["target"] for r in result["targets"]]
    assert any("plain forward" in n for n in names) and any("peak memory" in n for n in names)
    assert any("hybrid/CE" in n for n in names)
    text = to_markdown(result)
    assert "## tiny" in text and "## Targets" in text and "train hybrid" in text
    json.dumps(result, default=str)


def test_cli_writes_json_and_markdown(tmp_path, monkeypatch, capsys):
    from zoo.cli import bench
    monkeypatch.setattr("benchmarks.suite.default_configs", lambda quick: [tiny_config()])
    args = argparse.Namespace(threads=1, device="cpu", out=str(tmp_path), quick=True, repeats=1,
                              only=None, no_growth=True)
    assert bench.run(args) == 0
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["configs"][0]["name"] == "tiny" and data["quick"] is True
    assert (tmp_path / "bench.md").read_text() in capsys.readouterr().out


def test_default_configs_time_the_bundled_original_mode():
    """Besides the exact engine, the bench times the bundled fashion_cnnf as it is used: its
    card's architecture in the original-compatible mode, with its trained weights."""
    from benchmarks.suite import default_configs
    from inference import Options
    from zoo.models import create_model
    configs = {c.name: c for c in default_configs(quick=True)}
    assert configs["fashion-mnist"].build(1).options == Options()
    original = configs["fashion-mnist-original"]
    assert not original.targets and original.cycles == (0, 1, 2, 5)
    net = original.build(2)
    bundled = create_model("fashion_cnnf", pretrained=True)
    assert net.cycles == 2 and net.options == Options.original() == bundled.options
    for k, v in bundled.state_dict().items():
        assert torch.equal(net.state_dict()[k], v)


def test_configs_without_targets_are_timed_but_not_judged():
    plain = tiny_config()
    result = run_suite(threads=1, quick=True, repeats=1, with_growth=False,
                       configs=[Config("untargeted", plain.build, batch=4, cycles=(0, 2),
                                       train_cycles=2, numpy_batch=2, targets=False)])
    assert result["configs"][0]["inference"]["runs"][2]["time_s"] > 0
    assert result["targets"] == []
    assert "## untargeted" in to_markdown(result)
