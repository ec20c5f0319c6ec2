"""Pretrained weights: safetensors files with a JSON model card, sha256-checked at every load.

A weights file ``NAME.safetensors`` holds the module's state dict (one tensor per parameter:
weights are tied functionally, so nothing is aliased) and the card (without its hash) as JSON in
the safetensors metadata under ``"card"``; the sidecar ``NAME.json`` is the full card including
``"sha256"`` of the safetensors file. Nothing is ever downloaded: a file name resolves to, in
order, the explicit path, the bundled file in ``zoo/weights/``, then ``$DGM_WEIGHTS_DIR``.
Every failure is a ``DGMError`` (a ``ValueError``) naming the file and what was expected;
a file that cannot be found is a ``FileNotFoundError`` listing where it was looked for.
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

from backends import DGMError

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
        raise DGMError(f"weights path must end in .safetensors, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(path), metadata={"card": json.dumps(card, sort_keys=True)})
    path.chmod(0o644)   # safetensors creates the file owner-only; weights are package data
    sha = sha256_file(path)
    card_path(path).write_text(json.dumps({**card, "file": path.name, "sha256": sha}, indent=2)
                               + "\n")
    return sha


def resolve_weights(name: str | os.PathLike) -> Path:
    """Find a weights file: ``name`` as a path, then ``zoo/weights/<name>``, then
    ``$DGM_WEIGHTS_DIR/<name>``; ``FileNotFoundError`` listing the places tried."""
    explicit = Path(name)
    candidates = [explicit, BUNDLED_DIR / explicit.name]
    if os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]) / explicit.name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = "\n".join(f"  {c}" for c in candidates)
    raise FileNotFoundError(f"weights file {explicit.name!r} not found; looked in:\n{tried}\n"
                            f"(set ${ENV_VAR} to a directory holding it)")


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON card of a weights file (``{}`` when there is none)."""
    sidecar = card_path(path)
    if not sidecar.is_file():
        return {}
    try:
        return json.loads(sidecar.read_text())
    except json.JSONDecodeError as err:
        raise DGMError(f"model card {sidecar} is not valid JSON ({err})") from None


def load_weights(module: torch.nn.Module, path: str | os.PathLike,
                 expected_sha256: Optional[str] = None) -> dict[str, Any]:
    """Load a weights file (resolved as in :func:`resolve_weights`) into ``module``.

    The file's sha256 must equal ``expected_sha256`` or, when that is None, the ``"sha256"``
    of its JSON card; the tensors must match the module's parameter names and shapes exactly.
    Returns the card (JSON sidecar, else the card in the file's metadata).
    """
    path = resolve_weights(path)
    card = read_card(path)
    expected = expected_sha256 or card.get("sha256")
    if not expected:
        raise DGMError(f"no sha256 to check {path} against: pass expected_sha256 or provide "
                       f"its card {card_path(path)} with a 'sha256' field")
    actual = sha256_file(path)
    if actual != expected:
        raise DGMError(f"weights file {path} has sha256 {actual}, expected {expected} "
                       f"(corrupt or replaced file)")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise DGMError(f"weights file {path} is not a readable safetensors file ({err})") \
            from None
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = [f"{k}: file {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
             for k in sorted(set(own) & set(state)) if state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise DGMError(f"weights file {path} does not fit {type(module).__name__} (wrong "
                       f"architecture?): missing {missing[:5]}, unexpected {unexpected[:5]}, "
                       f"wrong shapes {wrong[:5]}" + (f"; card arch: {card['arch']}"
                                                      if "arch" in card else ""))
    module.load_state_dict(state)
    if not card:
        with safe_open(str(path), framework="pt") as f:
            card = json.loads((f.metadata() or {}).get("card", "{}"))
    return card
