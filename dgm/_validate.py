"""Input checks for public functions: one clear InputError (a DGMError) or TypeError naming the
argument."""
from __future__ import annotations

from typing import Any

from backends import DGMError, InputError, get_backend


def check_array(name: str, x: Any, *, shape_tail: tuple | None = None, like: Any = None,
                floating: bool = True, finite: bool = True):
    """Validate ``x`` and return its backend: type, trailing shape, dtype/device match, finiteness."""
    try:
        ops = get_backend(x)
    except DGMError:
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}") \
            from None
    if like is not None:
        like_ops = get_backend(like)
        if like_ops is not ops:
            raise TypeError(f"{name} is a {ops.describe(x)} but the parameters are "
                            f"{like_ops.describe(like)}; use one backend for both")
        if floating and (x.dtype != like.dtype or getattr(x, "device", None) != getattr(
                like, "device", None)):
            raise TypeError(f"{name} is {ops.describe(x)} but the parameters are "
                            f"{ops.describe(like)}; convert it (same dtype and device)")
    if shape_tail is not None and (x.ndim != len(shape_tail) + 1
                                   or tuple(x.shape[1:]) != tuple(shape_tail)):
        raise InputError(f"{name} must have shape (N, {', '.join(map(str, shape_tail))}), "
                       f"got {tuple(x.shape)}")
    if shape_tail is not None and x.shape[0] == 0:
        raise InputError(f"{name} is an empty batch (N = 0); pass at least one example")
    if floating and finite and not bool(ops.xp.isfinite(x).all()):
        raise InputError(f"{name} contains NaN or inf")
    return ops


def check_latent(name: str, x: Any, shape: tuple, kind: str, like: Any,
                 high: int | None = None) -> None:
    """A discrete latent: same backend as ``like``, ``kind`` "bool" or "integer", exact
    ``shape`` and (integers) values in ``0..high-1``."""
    ops, like_ops = check_array(name, x, floating=False), get_backend(like)
    if ops is not like_ops:
        raise TypeError(f"{name} is a {ops.describe(x)} but the parameters are "
                        f"{like_ops.describe(like)}; use one backend for both")
    if _dtype_kind(x) != kind:
        raise TypeError(f"{name} must be a {kind} array, got {ops.describe(x)}")
    if tuple(x.shape) != tuple(shape):
        raise InputError(f"{name} must have shape {tuple(shape)}, got {tuple(x.shape)}")
    if high is not None and bool(((x < 0) | (x >= high)).any()):
        raise InputError(f"{name} must hold values in 0..{high - 1}")


def _dtype_kind(x: Any) -> str:
    """"bool", "integer" or "float"/"other" for a numpy array or torch tensor (no torch import)."""
    dtype = x.dtype
    if str(dtype) in ("bool", "torch.bool"):
        return "bool"
    kind = getattr(dtype, "kind", None)
    if kind is not None:  # numpy
        return "integer" if kind in "iu" else "other"
    return "other" if dtype.is_floating_point or dtype.is_complex else "integer"
