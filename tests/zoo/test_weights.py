"""zoo.weights and the model hub (zoo.models.hub): round trip, sha256 always checked, clear errors for missing,
corrupt and mismatched files, resolution order, registry names and close-match suggestions."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch

from backends import DGMError, WeightsError
from dgm import DGM
from dgm import layers as L
from inference import Options
from zoo import weights as W
from zoo.models import hub
from zoo.models.cnnf import CNNF
from zoo.models.hub import create_model, list_models, register_model

torch.set_num_threads(1)


def tiny(width: int = 3, seed: int = 0) -> CNNF:
    model = DGM([L.Conv2d(1, width, 3, padding=1), L.Switch(width), L.Flatten(),
                 L.Dense(width * 16, 3)], classes=3, input_shape=(1, 4, 4))
    return CNNF(model, cycles=1, seed=seed)


CARD = {"name": "tiny", "arch": {"cycles": 1}, "metrics": {"val": {"accuracy": 0.5}}}


@pytest.fixture
def saved(tmp_path):
    net = tiny(seed=1)
    path = tmp_path / "tiny.safetensors"
    return net, path, W.save_weights(net, path, CARD)


def test_round_trip_restores_tensors_and_card(saved):
    net, path, sha = saved
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["sha256"] == sha and card["metrics"] == CARD["metrics"]
    other = tiny(seed=2)
    loaded = W.load_weights(other, path)
    assert loaded["sha256"] == sha
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                  other.state_dict().values()))
    x = torch.rand(2, 1, 4, 4) * 2 - 1
    assert torch.equal(net(x), other(x))


def test_card_in_metadata_used_without_sidecar(saved):
    net, path, sha = saved
    path.with_suffix(".json").unlink()
    with pytest.raises(DGMError, match="no sha256"):
        W.load_weights(tiny(), path)
    assert W.load_weights(tiny(), path, expected_sha256=sha)["arch"] == CARD["arch"]


def test_corrupt_file_is_rejected_naming_the_file(saved):
    _, path, sha = saved
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DGMError, match=f"{path.name}.*expected {sha}"):
        W.load_weights(tiny(), path)


def test_wrong_expected_hash_is_rejected(saved):
    _, path, _ = saved
    with pytest.raises(DGMError, match="sha256"):
        W.load_weights(tiny(), path, expected_sha256="0" * 64)


def test_wrong_architecture_is_rejected(saved):
    _, path, _ = saved
    with pytest.raises(DGMError, match="does not fit.*wrong shapes"):
        W.load_weights(tiny(width=4), path)


def test_missing_registry_file_names_the_places_tried(tmp_path, monkeypatch):
    monkeypatch.setenv(W.ENV_VAR, str(tmp_path / "env"))
    with pytest.raises(WeightsError, match="absent.safetensors") as err:
        W.resolve_weights("absent.safetensors")
    assert str(tmp_path / "env") in str(err.value) and str(W.BUNDLED_DIR) in str(err.value)


def test_registry_lookup_order_bundled_then_env(tmp_path, monkeypatch):
    bundled, env = tmp_path / "bundled", tmp_path / "env"
    for d in (bundled, env):
        d.mkdir()
        (d / "m.safetensors").write_bytes(b"x")
    monkeypatch.setattr(W, "BUNDLED_DIR", bundled)
    monkeypatch.setenv(W.ENV_VAR, str(env))
    assert W.resolve_weights("m.safetensors") == bundled / "m.safetensors"
    (bundled / "m.safetensors").unlink()
    assert W.resolve_weights("m.safetensors") == env / "m.safetensors"


def test_explicit_path_is_never_replaced_by_a_bundled_file(tmp_path, monkeypatch):
    """issue 16 case 1: a wrong path is an error naming it, not the bundled file of that name."""
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "my_runs" / "fashion_cnnf.safetensors"
    for source in (missing, "fashion_cnnf.safetensors", str(tmp_path)):
        with pytest.raises(WeightsError, match="fashion_cnnf.safetensors|directory"):
            create_model("fashion_cnnf", pretrained=source)
    with pytest.raises(WeightsError, match=str(missing)):
        W.load_weights(tiny(), missing)
    explicit = tmp_path / "m.safetensors"
    explicit.write_bytes(b"y")
    assert W.weights_path(explicit) == explicit


def test_weights_of_another_registered_model_are_refused(tmp_path):
    """issue 16 case 1: the bundled CNN passed as the CNN-F is an error naming both."""
    cnn = W.BUNDLED_DIR / "fashion_cnn.safetensors"
    if not cnn.is_file():
        pytest.skip("no bundled fashion_cnn")
    with pytest.raises(WeightsError, match="'fashion_cnn' weights.*not 'fashion_cnnf'"):
        create_model("fashion_cnnf", pretrained=cnn)
    net = create_model("fashion_cnnf", mode="original", cycles=2)
    path = tmp_path / "f.safetensors"
    W.save_weights(net, path, {"arch": {"mode": "original", "cycles": 2}})
    with pytest.raises(WeightsError, match="cycles=2.*'fashion_cnn' has cycles=0"):
        create_model("fashion_cnn", pretrained=path)


def test_card_without_arch_is_refused(tmp_path):
    """issue 16 case 1: no guessing of the inference mode when the card does not say it."""
    net = create_model("fashion_cnnf", mode="original", cycles=1)
    path = tmp_path / "f.safetensors"
    W.save_weights(net, path, {"name": "fashion_cnnf"})
    with pytest.raises(WeightsError, match="no 'arch'"):
        create_model("fashion_cnnf", pretrained=path)


def test_weights_of_another_architecture_name_file_and_arch(tmp_path):
    """issue 16 case 8: WRN weights given as a Fashion model -> one error naming the file."""
    path = tmp_path / "w.safetensors"
    W.save_weights(tiny(), path, {"arch": {"depth": 16, "widen": 2, "cycles": 1}})
    with pytest.raises(WeightsError, match=f"{path}.*depth.*another architecture"):
        create_model("fashion_cnnf", pretrained=path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, bad):
    """issue 16 case 5: NaN/inf weights with a valid card (sha256 matches) do not load."""
    net = tiny()
    with torch.no_grad():
        next(iter(net.parameters()))[0].fill_(bad)
    path = tmp_path / "nan.safetensors"
    W.save_weights(net, path, CARD)
    with pytest.raises(WeightsError, match="NaN or inf"):
        W.load_weights(tiny(), path)


def test_registry_names_suggestions_and_duplicates(monkeypatch):
    monkeypatch.setattr(hub, "_MODELS", dict(hub._MODELS))

    def extra():
        return tiny()

    register_model(extra)
    assert "extra" in list_models() and "extra" not in list_models(pretrained=True)
    assert {"fashion_cnn", "fashion_cnnf"} <= set(list_models())
    with pytest.raises(DGMError, match="did you mean 'fashion_cnnf'"):
        create_model("fashion_cnf")
    with pytest.raises(DGMError, match="already registered"):
        register_model(extra)
    net = create_model("fashion_cnn")
    assert net.cycles == 0 and net.card == {} and not net.training
    assert create_model("fashion_cnnf").cycles == 5


def test_create_model_takes_arch_from_the_card(tmp_path):
    net = create_model("fashion_cnnf", mode="original", cycles=1)
    path = tmp_path / "f.safetensors"
    W.save_weights(net, path, {"arch": {"mode": "original", "cycles": 1}})
    again = create_model("fashion_cnnf", pretrained=path)
    assert again.cycles == 1 and again.options == net.options
    assert create_model("fashion_cnnf", pretrained=path, cycles=2).cycles == 2


@pytest.mark.parametrize("name", ["fashion_cnn", "fashion_cnnf", "fashion_dgm"])
def test_bundled_weights_verify(name):
    if name not in list_models(pretrained=True):
        pytest.skip(f"{name} has no bundled weights")
    net = create_model(name, pretrained=True)
    assert net.card["sha256"] == W.sha256_file(W.resolve_weights(f"{name}.safetensors"))


def test_tags_name_their_files_and_load_the_tagged_weights():
    assert hub.weights_file("fashion_cnnf") == "fashion_cnnf.safetensors"
    assert hub.weights_file("fashion_cnnf.exact") == "fashion_cnnf_exact.safetensors"
    if not hub.has_weights("fashion_cnnf.exact"):
        pytest.skip("no bundled fashion_cnnf_exact weights")
    assert "fashion_cnnf.exact" in list_models(pretrained=True)
    card = json.loads((W.BUNDLED_DIR / "fashion_cnnf_exact.json").read_text())
    for net in (create_model("fashion_cnnf.exact", pretrained=True),
                create_model("fashion_cnnf", pretrained="exact")):
        assert net.card["sha256"] == card["sha256"]
        assert net.options == Options() and net.cycles == card["arch"]["cycles"]
    with pytest.raises(DGMError, match="no weights tag 'fast'.*exact"):
        create_model("fashion_cnnf.fast", pretrained=True)


def test_every_model_function_takes_pretrained(tmp_path, monkeypatch):
    import zoo
    net = zoo.fashion_cnn(seed=3)
    path = tmp_path / "cnn.safetensors"
    W.save_weights(net, path, {"arch": {"cycles": 0}})
    for fn in (zoo.fashion_cnn, zoo.fashion_cnnf):
        loaded = fn(pretrained=path)
        assert loaded.card["sha256"] == W.sha256_file(path) and loaded.is_cnn
        assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                      loaded.state_dict().values()))
    monkeypatch.setenv(W.ENV_VAR, str(tmp_path / "env"))
    with pytest.raises(WeightsError, match="cnnf_wrn_40_2.safetensors"):
        zoo.create_model("cnnf_wrn_40_2", pretrained=True)


def test_load_trained_builds_the_run_model(tmp_path):
    from zoo.training import load_trained, save_checkpoint
    net = create_model("fashion_cnnf", cycles=1, ind=1, seed=4)
    config = {"dataset": "fashion-mnist", "cycles": 1, "ind": 1, "norm": "frozen",
              "mode": "exact", "readout": "avg", "seed": 0}
    save_checkpoint(tmp_path / "best.pt", {"model": net.state_dict(), "config": config})
    by_recipe = load_trained(tmp_path / "best.pt")
    by_name = load_trained(tmp_path / "best.pt", "fashion_cnnf")
    for got in (by_recipe, by_name):
        assert (got.cycles, got.readout) == (1, "avg")
        assert len(got.dgm.encoder) == len(net.dgm.encoder)
        assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                      got.state_dict().values()))
