"""Per-image worst case over a suite of attacks (the "min" column).

An image counts as robust only if the model is correct on it under **every** attack; the
worst-case accuracy is therefore never above the accuracy of any single attack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import torch
from torch import Tensor

__all__ = ["worst_case", "broken_by", "WorstCaseSummary", "summarize_worst_case"]


def _validate(correct_by_attack: Mapping[str, Tensor]) -> int:
    """Check that all entries are ``(N,)`` bool tensors of one length; return ``N``."""
    if not correct_by_attack:
        raise ValueError("correct_by_attack is empty")
    n: Optional[int] = None
    for name, c in correct_by_attack.items():
        if not isinstance(c, Tensor) or c.dtype != torch.bool or c.dim() != 1:
            raise ValueError(f"correct_by_attack[{name!r}] must be a 1-D bool tensor")
        if n is None:
            n = c.shape[0]
        elif c.shape[0] != n:
            raise ValueError(
                f"correct_by_attack[{name!r}] has {c.shape[0]} entries, expected {n}"
            )
    assert n is not None
    return n


def worst_case(correct_by_attack: Mapping[str, Tensor]) -> Tensor:
    """Per-image AND over attacks.

    Args:
        correct_by_attack: attack name -> ``(N,)`` bool, correct under that attack.

    Returns:
        ``(N,)`` bool: correct under every attack.
    """
    _validate(correct_by_attack)
    out: Optional[Tensor] = None
    for c in correct_by_attack.values():
        out = c.clone() if out is None else out & c.to(out.device)
    assert out is not None
    return out


def broken_by(correct_by_attack: Mapping[str, Tensor]) -> list[tuple[str, ...]]:
    """Which attacks broke each image.

    Args:
        correct_by_attack: attack name -> ``(N,)`` bool.

    Returns:
        Length-``N`` list; entry ``i`` holds the names (in dict order) of the attacks under
        which image ``i`` is misclassified (empty for robust images).
    """
    n = _validate(correct_by_attack)
    cols = {name: c.detach().cpu().tolist() for name, c in correct_by_attack.items()}
    return [tuple(name for name, col in cols.items() if not col[i]) for i in range(n)]


@dataclass
class WorstCaseSummary:
    """Worst-case evaluation over a suite of attacks.

    Attributes:
        robust: ``(N,)`` bool, correct under every attack.
        accuracy: fraction of robust images (the "min" column).
        broken_by: per image, names of the attacks that broke it.
        first_broken_by: per image, the first attack (dict order) that broke it, or ``None``.
        n_broken: attack name -> number of images it broke.
        n_only_broken: attack name -> number of images broken by that attack alone
            (attacks with zero here are not needed for the worst case).
    """

    robust: Tensor
    accuracy: float
    broken_by: list[tuple[str, ...]]
    first_broken_by: list[Optional[str]]
    n_broken: dict[str, int]
    n_only_broken: dict[str, int]


def summarize_worst_case(correct_by_attack: Mapping[str, Tensor]) -> WorstCaseSummary:
    """Worst case plus a record of which attack broke each image.

    Args:
        correct_by_attack: attack name -> ``(N,)`` bool.

    Returns:
        :class:`WorstCaseSummary`.
    """
    robust = worst_case(correct_by_attack)
    per_image = broken_by(correct_by_attack)
    n_broken = {name: int((~c).sum().item()) for name, c in correct_by_attack.items()}
    n_only = {name: 0 for name in correct_by_attack}
    for names in per_image:
        if len(names) == 1:
            n_only[names[0]] += 1
    n = robust.shape[0]
    return WorstCaseSummary(
        robust=robust,
        accuracy=float(robust.sum().item()) / n if n else float("nan"),
        broken_by=per_image,
        first_broken_by=[names[0] if names else None for names in per_image],
        n_broken=n_broken,
        n_only_broken=n_only,
    )
