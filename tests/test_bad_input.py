"""Bad input to the public API (issue 3, part 5): wrong shapes, dtypes, NaN/inf, mixed backends,
wrong parameter names, bad states, bad ``Options``/``DGM`` arguments each give one clear
``DGMError`` (a ``ValueError``) or ``TypeError`` whose message names the argument — never an
error from deep inside an op.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from backends import DGMError, backend_by_name, get_backend
from dgm import DGM, State, layers as L
from inference import Options, alternating_map


def small():
    model = DGM([L.Conv2d(1, 2, 3, padding=1), L.Switch(2), L.MaxPool(2), L.Flatten(),
                 L.Dense(8, 3), L.Switch(3)], classes=2, tau2=1.0, input_shape=(1, 4, 4))
    params = model.init("numpy", seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 1, 4, 4))
    return model, params, x


def plain():
    model, params, x = small()
    return model, params, x, model.plain_state(params, x)[0]


# -- DGM construction --------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(classes=1), "classes"),
    (dict(sigma2=0.0), "sigma2"),
    (dict(sigma2=-1.0), "sigma2"),
    (dict(sigma2=math.nan), "sigma2"),
    (dict(sigma2=math.inf), "sigma2"),
    (dict(tau2=0.0), "tau2"),
    (dict(tau2=math.nan), "tau2"),
    (dict(norm="batch"), "norm"),
    (dict(input_shape=(2, 4, 4)), "channels"),
    (dict(input_shape=(1, 1, 1)), "empty"),
])
def test_bad_dgm_arguments(kwargs, match):
    args = dict(classes=2, input_shape=(1, 4, 4))
    args.update(kwargs)
    with pytest.raises(DGMError, match=match):
        DGM([L.Conv2d(1, 2, 3, padding=0), L.Switch(2), L.Flatten()], **args)


@pytest.mark.parametrize("layers, input_shape, error, match", [
    ([], (4,), DGMError, "layers"),
    ([L.Dense(4, 3), "relu"], (4,), TypeError, "layer 1"),
    ([L.Dense(5, 3), L.Switch(3)], (4,), DGMError, "in_features"),
    ([L.Conv2d(1, 2, 3), L.Switch(2)], (1, 4, 4), DGMError, "flat"),
    ([L.Conv2d(1, 2, 1), L.MaxPool(2), L.Flatten()], (1, 3, 3), DGMError, "divisible"),
    ([L.Conv2d(1, 2, 1), L.AvgPool(2), L.Flatten()], (1, 5, 4), DGMError, "divisible"),
    ([L.Conv2d(1, 2, 1), L.Residual(body=(L.Conv2d(2, 3, 1),)), L.Flatten()], (1, 2, 2),
     DGMError, "projection"),
    ([L.Dense(4, 3), L.Switch(2)], (4,), DGMError, "channels"),
])
def test_bad_skeletons(layers, input_shape, error, match):
    with pytest.raises(error, match=match):
        DGM(layers, classes=2, input_shape=input_shape)


def test_bad_layer_arguments():
    with pytest.raises(DGMError, match="leak"):
        L.Switch(2, leak=1.0)
    with pytest.raises(DGMError, match="leak"):
        L.Switch(2, leak=-0.1)
    with pytest.raises(DGMError, match="render"):
        L.AvgPool(2, render="bilinear")


def test_bad_backend_name():
    model, _, _ = small()
    with pytest.raises(DGMError, match="backend"):
        model.init("jax")
    with pytest.raises(DGMError, match="numpy array or torch tensor"):
        get_backend([1.0, 2.0])
    with pytest.raises(DGMError, match="backend"):
        backend_by_name("tensorflow")


# -- parameters ---------------------------------------------------------------------------------

def test_wrong_parameter_names_and_shapes():
    model, params, x = small()
    missing = {k: v for k, v in params.items() if k != "layers.1.bias"}
    with pytest.raises(DGMError, match=r"missing \['layers.1.bias'\]"):
        alternating_map(model, missing, x)
    extra = dict(params, **{"layers.9.weight": params["layers.0.weight"]})
    with pytest.raises(DGMError, match=r"unexpected \['layers.9.weight'\]"):
        alternating_map(model, extra, x)
    with pytest.raises(DGMError, match=r"missing \['layers.1.bias'\]"):
        alternating_map(model, missing, x, observed="level0",
                        initial_state=model.plain_state(params, x)[0])
    wrong = dict(params, **{"head.bias": np.zeros(3)})
    with pytest.raises(DGMError, match=r"params\['head.bias'\] must have shape \(2,\)"):
        model.plain_state(wrong, x)
    mixed = dict(params, **{"layers.1.bias": params["layers.1.bias"].astype(np.float32)})
    with pytest.raises(TypeError, match=r"params\['layers.1.bias'\]"):
        model.plain_state(mixed, x)
    half_torch = dict(params, **{"layers.1.bias": torch.zeros(2, dtype=torch.float64)})
    with pytest.raises(TypeError, match=r"params\['layers.1.bias'\].*one backend"):
        model.plain_state(half_torch, x)
    with pytest.raises(TypeError, match=r"params\['head.weight'\]"):
        model.plain_state(dict(params, **{"head.weight": [[0.0] * 3] * 2}), x)


# -- inputs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("make_x, error, match", [
    (lambda x: x[:, 0], DGMError, r"x must have shape \(N, 1, 4, 4\)"),
    (lambda x: x.reshape(2, 1, 2, 8), DGMError, r"x must have shape"),
    (lambda x: x.astype(np.float32), TypeError, "x is .*float32"),
    (lambda x: x.astype(np.int64), TypeError, "x is"),
    (lambda x: np.where(x > 0.5, np.nan, x), DGMError, "x contains NaN or inf"),
    (lambda x: np.where(x > 0.5, np.inf, x), DGMError, "x contains NaN or inf"),
    (lambda x: torch.from_numpy(x), TypeError, "x is a torch.Tensor.*one backend"),
    (lambda x: x.tolist(), TypeError, "x must be a numpy array or torch tensor"),
    (lambda x: x[:0], DGMError, "x is an empty batch"),
])
def test_bad_x(make_x, error, match):
    model, params, x = small()
    with pytest.raises(error, match=match):
        alternating_map(model, params, make_x(x))
    with pytest.raises(error, match=match):
        model.log_joint(params, make_x(x), model.plain_state(params, x)[0])


@pytest.mark.parametrize("make_x, error, match", [
    (lambda x: x[:, :, :2], DGMError, "x must have shape"),
    (lambda x: np.where(x > 0.5, np.nan, x), DGMError, "x contains NaN"),
    (lambda x: torch.from_numpy(x), TypeError, "one backend"),
])
def test_bad_level0_observation_with_initial_state(make_x, error, match):
    """observed="level0" with a given initial state: x̃ itself is still checked."""
    model, params, x, state = plain()
    with pytest.raises(error, match=match):
        alternating_map(model, params, make_x(x), observed="level0", initial_state=state)
    with pytest.raises(error, match=match):
        model.log_joint(params, make_x(x), state, observed="level0")


def test_batch_size_mismatch_between_x_and_state():
    model, params, x, state = plain()
    with pytest.raises(DGMError, match="batch"):
        alternating_map(model, params, x[:1], initial_state=state)
    with pytest.raises(DGMError, match="batch"):
        model.log_joint(params, x[:1], state)


def test_torch_device_and_dtype_mismatch():
    model, _, x = small()
    params = model.init("torch", seed=0, dtype=torch.float64)
    with pytest.raises(TypeError, match="x is torch.Tensor\\[torch.float32"):
        alternating_map(model, params, torch.from_numpy(x).float())


# -- states -----------------------------------------------------------------------------------

def _bad_states():
    model, params, x, s = plain()
    z, t = dict(s.z), dict(s.t)
    return {
        "not_a_state": ((s.h, s.y), TypeError, "state must be a dgm.State"),
        "h_shape": (State(h=s.h[:, :, :2], y=s.y, z=z, t=t), DGMError, r"state.h"),
        "h_nan": (State(h=s.h * np.nan, y=s.y, z=z, t=t), DGMError, r"state.h contains NaN"),
        "y_shape": (State(h=s.h, y=s.y[:1], z=z, t=t), DGMError, r"state.y must have shape"),
        "y_range": (State(h=s.h, y=s.y * 0 + 2, z=z, t=t), DGMError, r"state.y"),
        "y_float": (State(h=s.h, y=s.y * 1.0, z=z, t=t), TypeError, r"state.y"),
        "z_missing": (State(h=s.h, y=s.y, z={}, t=t), DGMError, r"state.z has no entry"),
        "z_shape": (State(h=s.h, y=s.y, z=dict(z, **{"1": z["1"][:, :1]}), t=t), DGMError,
                    r"state.z\['1'\] must have shape"),
        "z_float": (State(h=s.h, y=s.y, z=dict(z, **{"1": z["1"] * 1.0}), t=t), TypeError,
                    r"state.z\['1'\]"),
        "t_missing": (State(h=s.h, y=s.y, z=z, t={}), DGMError, r"state.t has no entry"),
        "t_shape": (State(h=s.h, y=s.y, z=z, t={"2": t["2"][:, :, :1]}), DGMError,
                    r"state.t\['2'\] must have shape"),
        "t_range": (State(h=s.h, y=s.y, z=z, t={"2": t["2"] * 0 + 4}), DGMError,
                    r"state.t\['2'\]"),
        "t_float": (State(h=s.h, y=s.y, z=z, t={"2": t["2"] * 1.0}), TypeError,
                    r"state.t\['2'\]"),
    }


@pytest.mark.parametrize("name", sorted(_bad_states()))
def test_bad_initial_state(name):
    model, params, x, _ = plain()
    state, error, match = _bad_states()[name]
    with pytest.raises(error, match=match):
        alternating_map(model, params, x, initial_state=state)
    with pytest.raises(error, match=match):
        model.log_joint(params, x, state)


def test_state_replace_keeps_shapes():
    _, _, _, s = plain()
    with pytest.raises(DGMError, match=r"State.replace: h must keep shape"):
        s.replace(h=s.h[:1])
    with pytest.raises(DGMError, match=r"State.replace: z\['1'\] must keep shape"):
        s.replace(z={"1": s.z["1"][:1]})
    with pytest.raises(DGMError, match=r"State.replace: z\['1'\] must keep shape"):
        s.replace(z={"1": s.z["1"].astype(np.int64)})  # gates stay boolean
    for k, t in s.t.items():  # positions may change integer dtype (torch keeps uint8 ones)
        assert s.replace(t={k: t.astype(np.uint8)}).t[k].dtype == np.uint8
        with pytest.raises(DGMError, match=r"must keep shape"):
            s.replace(t={k: t.astype(np.float64)})


# -- engine and options arguments --------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, match", [
    (dict(cycles=-1), DGMError, "cycles"),
    (dict(cycles=1.5), DGMError, "cycles"),
    (dict(record="all"), DGMError, "record"),
    (dict(observed="pixels"), DGMError, "observed"),
    (dict(options="exact"), TypeError, "options must be inference.Options"),
    (dict(options={"feedback": "onehot"}), TypeError, "options"),
])
def test_bad_engine_arguments(kwargs, error, match):
    model, params, x = small()
    with pytest.raises(error, match=match):
        alternating_map(model, params, x, **kwargs)


def test_bad_log_joint_arguments():
    model, params, x, state = plain()
    with pytest.raises(DGMError, match="normalisation"):
        model.log_joint(params, x, state, "C")
    with pytest.raises(DGMError, match="observed"):
        model.log_joint(params, x, state, observed="pixels")


@pytest.mark.parametrize("kwargs, match", [
    (dict(feedback="argmax"), "Options.feedback"),
    (dict(h_update="momentum"), "Options.h_update"),
    (dict(block="all"), "Options.block"),
    (dict(ties="first"), "Options.ties"),
    (dict(blend=1.0), "Options.blend"),
    (dict(blend=-0.1), "Options.blend"),
    (dict(blend=math.nan), "Options.blend"),
    (dict(h_update="damped", eta=0.0), "Options.eta"),
    (dict(h_update="damped", eta=2.0), "Options.eta"),
    (dict(h_update="original", eta=math.nan), "Options.eta"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(DGMError, match=match):
        Options(**kwargs)
    with pytest.raises(DGMError, match=match):
        Options().with_(**kwargs)


@pytest.mark.parametrize("eta", [0.0, 1.0, 1.5, -0.1, math.nan])
def test_bad_original_recipe_eta(eta):
    with pytest.raises(DGMError, match="Options.original eta"):
        Options.original(eta=eta)


# -- issue 16 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_alternating_map_refuses_non_finite_params(backend, bad):
    """case 5: NaN parameters ran to NaN logits without a word."""
    from backends import InputError
    model, params, x = small()
    params = dict(params, **{"layers.0.weight": params["layers.0.weight"].copy()})
    params["layers.0.weight"][0, 0, 0, 0] = bad
    if backend == "torch":
        params = {k: torch.from_numpy(v) for k, v in params.items()}
        x = torch.from_numpy(x)
    with pytest.raises(InputError, match=r"params\['layers.0.weight'\] contains NaN or inf"):
        alternating_map(model, params, x, cycles=1)


def test_frozen_norm_without_scales_is_an_input_error():
    """case 8: a bare KeyError came out of dgm/_hooks.py."""
    from backends import InputError
    model = DGM([L.Conv2d(1, 2, 3, padding=1), L.Norm(), L.Switch(2), L.Flatten(),
                 L.Dense(32, 3)], classes=2, input_shape=(1, 4, 4), norm="frozen")
    params = model.init("numpy", seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 1, 4, 4))
    state = model.plain_state(params, x)[0]
    bare = State(h=state.h, y=state.y, z=state.z, t=state.t)
    with pytest.raises(InputError, match="frozen norm scale"):
        model.render(params, bare)
