"""Input checks for public functions: one clear DGMError/TypeError naming the argument."""
from __future__ import annotations

from typing import Any

from backends import DGMError, get_backend


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
        raise DGMError(f"{name} must have shape (N, {', '.join(map(str, shape_tail))}), "
                       f"got {tuple(x.shape)}")
    if floating and finite and not bool(ops.xp.isfinite(x).all()):
        raise DGMError(f"{name} contains NaN or inf")
    return ops
