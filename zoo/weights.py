"""Pretrained weights: safetensors files with a JSON model card, sha256-checked at every load.

A weights file ``NAME.safetensors`` holds the module's state dict (one tensor per parameter:
weights are tied functionally, so nothing is aliased) and the card (without its hash) as JSON in
the safetensors metadata under ``"card"``; the sidecar ``NAME.json`` is the full card including
``"sha256"`` of the safetensors file. Nothing is ever downloaded and nothing is substituted: an
explicit path must exist (:func:`weights_path`); only a registry file name (no path given) is
looked up, in the bundled ``zoo/weights/`` then ``$DGM_WEIGHTS_DIR`` (:func:`resolve_weights`).
Tensors must be finite. Every failure is a ``WeightsError`` (a ``DGMError``, a ``ValueError``)
naming the file and what was expected; a file that cannot be found lists where it was looked for.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from backends import WeightsError

BUNDLED_DIR = Path(__file__).resolve().parent / "weights"
ENV_VAR = "DGM_WEIGHTS_DIR"


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def card_path(path: str | os.PathLike) -> Path:
    """The JSON card beside a weights file (``x.safetensors`` -> ``x.json``)."""
    return Path(path).with_suffix(".json")


def save_weights(module: torch.nn.Module, path: str | os.PathLike, card: dict[str, Any]) -> str:
    """Write ``module``'s state dict to ``path`` (safetensors) and its card to ``path``'s
    ``.json`` sibling; returns the file's sha256 (also stored in the JSON card)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise WeightsError(f"weights path must end in .safetensors, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(path), metadata={"card": json.dumps(card, sort_keys=True)})
    path.chmod(0o644)   # safetensors creates the file owner-only; weights are package data
    sha = sha256_file(path)
    card_path(path).write_text(json.dumps({**card, "file": path.name, "sha256": sha}, indent=2)
                               + "\n")
    return sha


def resolve_weights(name: str | os.PathLike) -> Path:
    """A registry weights file by name (only its file name is used): ``zoo/weights/<name>``,
    then ``$DGM_WEIGHTS_DIR/<name>``; ``WeightsError`` listing the places tried. For a file the
    user named, use :func:`weights_path` (never substituted by a bundled file)."""
    file_name = Path(name).name
    candidates = [BUNDLED_DIR / file_name]
    if os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]) / file_name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = "; ".join(str(c) for c in candidates)
    raise WeightsError(f"weights file {file_name!r} not found; looked in: {tried} "
                       f"(set ${ENV_VAR} to a directory holding it)")


def weights_path(path: str | os.PathLike) -> Path:
    """An explicit weights path: it must be an existing file (``WeightsError`` naming it)."""
    path = Path(path).expanduser()
    if not path.is_file():
        what = "is a directory, not" if path.is_dir() else "does not exist; expected"
        raise WeightsError(f"weights file {str(path)!r} {what} a .safetensors file")
    return path


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """The card of a weights file: its JSON sidecar, else the card in the file's metadata
    (``{}`` when there is neither)."""
    sidecar = card_path(path)
    if not sidecar.is_file():
        return _metadata_card(path)
    try:
        card = json.loads(sidecar.read_text())
    except json.JSONDecodeError as err:
        raise WeightsError(f"model card {sidecar} is not valid JSON ({err})") from None
    if not isinstance(card, dict):
        raise WeightsError(f"model card {sidecar} must be a JSON object, got "
                           f"{type(card).__name__}")
    return card


def _metadata_card(path: str | os.PathLike) -> dict[str, Any]:
    """The card stored in the safetensors metadata (``{}`` when absent)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads((f.metadata() or {}).get("card", "{}"))
    except (SafetensorError, OSError, json.JSONDecodeError) as err:
        raise WeightsError(f"weights file {path} is not a readable safetensors file ({err})") \
            from None


def load_weights(module: torch.nn.Module, path: str | os.PathLike,
                 expected_sha256: Optional[str] = None) -> dict[str, Any]:
    """Load the weights file ``path`` (which must exist) into ``module``.

    The file's sha256 must equal ``expected_sha256`` or, when that is None, the ``"sha256"``
    of its JSON card; the tensors must match the module's parameter names and shapes exactly
    and be finite (no NaN/inf). Returns the card (JSON sidecar, else the card in the file's
    metadata).
    """
    path = weights_path(path)
    card = read_card(path)
    expected = expected_sha256 or card.get("sha256")
    if not expected:
        raise WeightsError(f"no sha256 to check {path} against: pass expected_sha256 or "
                           f"provide its card {card_path(path)} with a 'sha256' field")
    actual = sha256_file(path)
    if actual != expected:
        raise WeightsError(f"weights file {path} has sha256 {actual}, expected {expected} "
                           f"(corrupt or replaced file)")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise WeightsError(f"weights file {path} is not a readable safetensors file ({err})") \
            from None
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = [f"{k}: file {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
             for k in sorted(set(own) & set(state)) if state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise WeightsError(f"weights file {path} does not fit {type(module).__name__} (wrong "
                           f"architecture?): missing {missing[:5]}, unexpected {unexpected[:5]}, "
                           f"wrong shapes {wrong[:5]}" + (f"; card arch: {card['arch']}"
                                                          if "arch" in card else ""))
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:
        raise WeightsError(f"weights file {path} holds NaN or inf values in {bad[:5]} "
                           f"(a diverged or corrupt export); refusing to load it")
    module.load_state_dict(state)
    return card
