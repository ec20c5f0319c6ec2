"""Training checkpoints: model, optimizer, progress and RNG states in one ``torch.save`` file.

Written atomically (temporary file + ``os.replace``) so an interruption never leaves a
truncated checkpoint; read with ``torch.load(weights_only=True)`` (tensors and plain Python
values only, no pickled code).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Atomically write ``payload`` (tensors, state dicts, plain values) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # torch reports a full disk as a RuntimeError
        tmp.unlink(missing_ok=True)
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise OSError(f"could not write checkpoint {path} ({detail}); check the free disk "
                      f"space and permissions (the previous {path.name}, if any, is intact)") \
            from None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; clear error when absent/corrupt."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated/corrupt pickles
        raise ValueError(f"checkpoint {path} could not be read ({type(err).__name__}: {err})") \
            from None


def rng_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Torch's global CPU RNG state and ``generator``'s state (the loop's random sources)."""
    return {"torch": torch.get_rng_state(), "generator": generator.get_state()}


def set_rng_state(state: dict[str, torch.Tensor], generator: torch.Generator) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])


def model_state(source: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model state dict inside a checkpoint (``"model"`` key) or a bare state dict."""
    return source["model"] if "model" in source else source
