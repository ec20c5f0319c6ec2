"""Issue 16: no silent substitutions, no lost work, one-line errors. Each test names the case of
the issue it covers; each fails on the code before the fix (the substitution, the traceback or
the silent acceptance it checks for happened there)."""
from __future__ import annotations

import warnings

import pytest
import torch

from backends import ConfigError, DataError, DGMError, InputError, WeightsError
from dgm import DGM
from dgm import layers as L
from zoo.models.cnnf import CNNF, InputRangeWarning

torch.set_num_threads(1)


def tiny(**kwargs) -> CNNF:
    model = DGM([L.Conv2d(1, 3, 3, padding=1), L.Switch(3), L.Flatten(), L.Dense(48, 3)],
                classes=3, input_shape=(1, 4, 4))
    return CNNF(model, cycles=1, **kwargs)


def test_one_hierarchy_under_dgm_error():
    """case 8: every kind of error is a DGMError (and a ValueError, as before)."""
    from zoo.data import DataError as ZooDataError
    assert ZooDataError is DataError
    for kind in (DataError, WeightsError, ConfigError, InputError):
        assert issubclass(kind, DGMError) and issubclass(kind, ValueError)


def test_unknown_readout_is_an_error_not_avg():
    """case 7: readout="bogus" was scored as "avg"."""
    net, x = tiny(), torch.rand(2, 1, 4, 4) * 2 - 1
    with torch.no_grad(), pytest.raises(ConfigError, match="readout.*'bogus'"):
        net(x, readout="bogus")


def test_zero_one_inputs_warn_and_strict_refuses():
    """case 7: inputs in [0, 1] instead of [-1, 1] were taken without a word."""
    net = tiny()
    x01 = torch.rand(4, 1, 4, 4)
    with torch.no_grad():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            net(x01 * 2 - 1)                       # [-1, 1]: silent
        with pytest.warns(InputRangeWarning, match=r"\[0, 1\]"):
            net(x01)
        with pytest.warns(InputRangeWarning, match=r"outside"):
            net(x01 * 255)
        net.strict_input = True
        with pytest.raises(InputError, match=r"\[0, 1\]"):
            net(x01)
