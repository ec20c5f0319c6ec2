"""zoo.convert and ``dgm zoo``: synthetic checkpoints with exactly the original key layout
(original-cnnf.md §A.5: 121 entries for WRN-40-2, 24 for Fashion-MNIST) convert to our
parameters, and the converted plain pass equals an independent re-implementation of the
original forward pass written directly on the original state dict."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from backends import DGMError
from zoo.cli import main as cli
from zoo.convert import convert_official_cnnf, official_arch
from zoo.models import fashion_cnnf
from zoo.models.wrn import cnnf_wrn

torch.set_num_threads(1)


def _conv_weight(g, cout, cin, k):
    return torch.randn(cout, cin, k, k, generator=g) * math.sqrt(2.0 / (k * k * cout))


def _tied_conv(sd, name, w):
    sd[f"{name}.conv.weight"] = w
    sd[f"{name}.conv_t.weight"] = w  # the same Parameter in the original


def _tied_linear(sd, name, w):
    sd[f"{name}.weight"] = w
    sd[f"{name}.linear.weight"] = w
    sd[f"{name}.linear_t.weight"] = w.t()


def _bias(g, *shape):
    return torch.randn(*shape, generator=g) * 0.1


def synthetic_wrn(depth=40, widen=2, classes=10, seed=0) -> dict:
    """A state dict with the original WideResNet's keys, order and shapes."""
    g = torch.Generator().manual_seed(seed)
    n, w = (depth - 4) // 6, (16, 16 * widen, 32 * widen, 64 * widen)
    sd = {}
    _tied_conv(sd, "conv1", _conv_weight(g, 16, 3, 3))
    for b in range(1, 4):
        for i in range(n):
            cin, cout = (w[b - 1] if i == 0 else w[b]), w[b]
            p = f"block{b}.layer.{i}"
            sd[f"{p}.ins1_bias.bias"] = _bias(g, 1, cin, 1, 1)
            _tied_conv(sd, f"{p}.conv1", _conv_weight(g, cout, cin, 3))
            sd[f"{p}.ins2_bias.bias"] = _bias(g, 1, cout, 1, 1)
            _tied_conv(sd, f"{p}.conv2", _conv_weight(g, cout, cout, 3))
            if cin != cout:
                _tied_conv(sd, f"{p}.conv_shortcut", _conv_weight(g, cout, cin, 1))
    sd["ins1_bias.bias"] = _bias(g, 1, w[3], 1, 1)
    _tied_linear(sd, "fc", torch.randn(classes, w[3], generator=g) / math.sqrt(w[3]))
    sd["fc_bias.bias"] = _bias(g, 1, classes)
    return sd


def synthetic_fashion(seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, (cin, cout) in enumerate(((1, 16), (16, 32), (32, 32), (32, 64)), start=1):
        _tied_conv(sd, f"conv{k}", _conv_weight(g, cout, cin, 3))
        sd[f"ins{k}_bias.bias"] = _bias(g, 1, cout, 1, 1)
    for k, (fin, fout) in enumerate(((3136, 1000), (1000, 128), (128, 10)), start=1):
        _tied_linear(sd, f"fc{k}", torch.randn(fout, fin, generator=g) / math.sqrt(fin))
        sd[f"fc{k}_bias.bias"] = _bias(g, 1, fout)
    return sd


def _ins(t):
    return t / torch.sqrt(t.pow(2).mean((2, 3), keepdim=True) + 1e-8)


def reference_wrn(sd, x):
    """The original WideResNet's first (feedforward) pass, on its own state dict."""
    n = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("block1."))
    out = F.conv2d(x, sd["conv1.conv.weight"], padding=1)
    for b, stride in zip((1, 2, 3), (1, 2, 2)):
        for i in range(n):
            p, s = f"block{b}.layer.{i}.", stride if i == 0 else 1
            a = F.relu(_ins(out) + sd[p + "ins1_bias.bias"])
            h = F.relu(_ins(F.conv2d(a, sd[p + "conv1.conv.weight"], stride=s, padding=1))
                       + sd[p + "ins2_bias.bias"])
            h = F.conv2d(h, sd[p + "conv2.conv.weight"], padding=1)
            short = sd.get(p + "conv_shortcut.conv.weight")
            out = h + (out if short is None else F.conv2d(a, short, stride=s))
    out = F.avg_pool2d(F.relu(_ins(out) + sd["ins1_bias.bias"]), 8).flatten(1)
    return out @ sd["fc.weight"].T + sd["fc_bias.bias"]


def reference_fashion(sd, x):
    out = x
    for k in range(1, 5):
        out = F.relu(_ins(F.conv2d(out, sd[f"conv{k}.conv.weight"], padding=1))
                     + sd[f"ins{k}_bias.bias"])
        if k >= 3:
            out = F.max_pool2d(out, 2)
    out = out.flatten(1)
    for k in (1, 2):
        out = F.relu(out @ sd[f"fc{k}.weight"].T + sd[f"fc{k}_bias.bias"])
    return out @ sd["fc3.weight"].T + sd["fc3_bias.bias"]


def _load(net, params):
    with torch.no_grad():
        for name, p in net.params().items():
            p.copy_(params[name])
    return net


@pytest.fixture(scope="module")
def wrn_sd():
    return synthetic_wrn()


def test_wrn40_layout_converts_to_unique_weights(wrn_sd):
    assert len(wrn_sd) == 121
    params = convert_official_cnnf(wrn_sd, "wrn")
    assert official_arch(wrn_sd) == {"depth": 40, "widen": 2, "num_classes": 10}
    assert sum(v.numel() for v in params.values()) == 2_240_842
    assert all(v.ndim != 4 or v.shape[0] != 1 for k, v in params.items() if "bias" in k)


@pytest.mark.parametrize("ind", [5, 0])
def test_wrn_converted_first_pass_matches_original(ind):
    sd = synthetic_wrn(depth=16, widen=2, seed=ind)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    net = _load(cnnf_wrn(depth=16, widen=2, cycles=0, ind=min(ind, 2)),
                convert_official_cnnf(sd, "wrn", ind=min(ind, 2)))
    with torch.no_grad():
        torch.testing.assert_close(net.first_pass(x), reference_wrn(sd, x), rtol=1e-4,
                                   atol=1e-4)


def test_wrn40_converted_first_pass_matches_original(wrn_sd):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    net = _load(cnnf_wrn(depth=40, widen=2, cycles=0), convert_official_cnnf(wrn_sd, "wrn"))
    with torch.no_grad():
        torch.testing.assert_close(net.first_pass(x), reference_wrn(wrn_sd, x), rtol=1e-4,
                                   atol=1e-4)


def test_fashion_layout_converts_and_matches_original():
    sd = synthetic_fashion()
    assert len(sd) == 24
    params = convert_official_cnnf(sd, "fashion")
    assert sum(v.numel() for v in params.values()) == 3_298_962
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(3)) * 2 - 1
    net = _load(fashion_cnnf(cycles=0, ind=2), params)
    with torch.no_grad():
        torch.testing.assert_close(net.first_pass(x), reference_fashion(sd, x), rtol=1e-4,
                                   atol=1e-4)


def test_path_wrapper_and_module_prefix(tmp_path):
    sd = synthetic_fashion()
    path = tmp_path / "CNNF_1_fmnist.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)
    direct = convert_official_cnnf(sd, "fashion")
    loaded = convert_official_cnnf(path, "fashion")
    assert direct.keys() == loaded.keys()
    assert all(torch.equal(direct[k], loaded[k]) for k in direct)


def test_errors_name_the_key():
    sd = synthetic_fashion()
    bad = dict(sd, **{"conv2.conv_t.weight": sd["conv2.conv.weight"] + 1})
    with pytest.raises(DGMError, match="conv2.conv_t.weight"):
        convert_official_cnnf(bad, "fashion")
    bad = dict(sd, **{"fc1.linear_t.weight": sd["fc1.weight"].t() * 2})
    with pytest.raises(DGMError, match="fc1.linear_t.weight"):
        convert_official_cnnf(bad, "fashion")
    with pytest.raises(DGMError, match="extra.weight"):
        convert_official_cnnf(dict(sd, **{"extra.weight": torch.zeros(1)}), "fashion")
    bad = dict(sd)
    del bad["conv3.conv.weight"]
    with pytest.raises(DGMError, match="conv3.conv.weight|missing"):
        convert_official_cnnf(bad, "fashion")
    with pytest.raises(DGMError, match="ins1_bias"):
        convert_official_cnnf(dict(sd, **{"ins1_bias.bias": torch.zeros(16)}), "fashion")
    with pytest.raises(DGMError, match="arch"):
        convert_official_cnnf(sd, "resnet")
    with pytest.raises(DGMError, match="unexpected key 'block1"):
        convert_official_cnnf(synthetic_wrn(depth=10, widen=1), "fashion")


def test_cli_convert_list_card(wrn_sd, tmp_path, monkeypatch, capsys):
    sd = wrn_sd
    src, out = tmp_path / "CNNF_2_cifar.pt", tmp_path / "w" / "cnnf_wrn_40_2.safetensors"
    torch.save(sd, src)
    assert cli(["zoo", "convert", str(src), str(out), "--arch", "wrn"]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["arch"]["ind"] == 5 and card["arch"]["head"] == "nearest"
    from zoo.models import create_model
    net = create_model("cnnf_wrn_40_2", pretrained=str(out))
    assert net.readout == "avg" and net.options.feedback == "logits"
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(net.first_pass(x), reference_wrn(sd, x), rtol=1e-4, atol=1e-4)
    monkeypatch.setenv("DGM_WEIGHTS_DIR", str(out.parent))
    capsys.readouterr()
    assert cli(["zoo", "card", "cnnf_wrn_40_2"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["sha256"] == card["sha256"]
    assert cli(["zoo", "list"]) == 0
    listed = capsys.readouterr().out
    assert "cnnf_wrn_40_2" in listed and "fashion_cnnf" in listed
