"""Learning-rate schedule of CNN-F's recipe (original-cnnf.md §C.2): "poly", stepped per batch."""
from __future__ import annotations


def poly_lr(base_lr: float, step: int, total: int, power: float = 0.9) -> float:
    """``base_lr · (1 − step/total)^power`` for ``0 <= step <= total`` (0 at ``step == total``)."""
    if total < 1:
        raise ValueError(f"total must be >= 1, got {total}")
    if not 0 <= step <= total:
        raise ValueError(f"step must be in [0, {total}], got {step}")
    return base_lr * (1.0 - step / total) ** power
