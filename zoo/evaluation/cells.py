"""Finished evaluation cells on disk: ``<out>/cells.jsonl`` gets one line per cell as soon as it
is computed, so an interrupted evaluation loses at most the cell in progress and ``--resume``
skips the cells already there.

The first line (``kind: "run"``) identifies the run: the evaluation config, the models (cycles,
readout, engine options, weights sha256), a CRC-32 of the subset's images and labels, and the
images kept for figures; a resume with any other identity is a ``ConfigError``.
Each cell line stores the key, the per-image booleans as "0"/"1" strings and the kept
adversarial inputs as base64 float32 bytes (bit-exact), so a resumed evaluation reports the
same numbers as an uninterrupted one (random starts are seeded per cell, see ``runner``).
"""
from __future__ import annotations

import base64
import json
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

from backends import ConfigError

from .runner import Cell, EvalConfig

FILE = "cells.jsonl"


def run_identity(models: Mapping[str, Any], x: Tensor, y: Tensor, config: EvalConfig,
                 keep: int | list[int]) -> dict[str, Any]:
    """What must be equal for stored cells to be reused (JSON-normalised); ``keep``: the
    positions kept for figures (an int n: the first n)."""
    ident = dict(config=asdict(config), keep=keep, n=len(y),
                 data_crc32=[zlib.crc32(x.detach().cpu().contiguous().numpy().tobytes()),
                             zlib.crc32(y.cpu().contiguous().numpy().tobytes())],
                 models={m: dict(cycles=net.cycles, readout=net.readout,
                                 options=asdict(net.options),
                                 sha256=getattr(net, "card", {}).get("sha256"))
                         for m, net in models.items()})
    return json.loads(json.dumps(ident))


def _bits(t: Tensor) -> str:
    return "".join("1" if v else "0" for v in t.reshape(-1).tolist())


def _unbits(text: str, shape: list[int]) -> Tensor:
    return torch.tensor([c == "1" for c in text], dtype=torch.bool).reshape(shape)


def cell_record(key: tuple, cell: Cell) -> dict[str, Any]:
    """A JSON-able line holding everything of ``cell``."""
    x = cell.x_adv.detach().cpu().to(torch.float32).contiguous()
    return dict(kind="cell", key=list(key), seconds=cell.seconds,
                correct=_bits(cell.correct), pass_correct=_bits(cell.pass_correct),
                pass_shape=list(cell.pass_correct.shape),
                attacked=None if cell.attacked is None else _bits(cell.attacked),
                cascade=list(cell.cascade),
                x_adv=base64.b64encode(x.numpy().tobytes()).decode(), x_shape=list(x.shape))


def cell_from_record(rec: Mapping[str, Any]) -> tuple[tuple, Cell]:
    """Inverse of :func:`cell_record`."""
    n = len(rec["correct"])
    x = np.frombuffer(base64.b64decode(rec["x_adv"]), dtype=np.float32).reshape(rec["x_shape"])
    m, r, a, e = rec["key"]
    return (m, r, a, float(e)), Cell(
        _unbits(rec["correct"], [n]), _unbits(rec["pass_correct"], rec["pass_shape"]),
        torch.from_numpy(x.copy()), rec["seconds"],
        None if rec["attacked"] is None else _unbits(rec["attacked"], [n]),
        tuple(rec["cascade"]))


class CellLog:
    """Appends finished cells to ``<out>/cells.jsonl``; reads them back for a resume."""

    def __init__(self, out: Path, identity: dict[str, Any], *, resume: bool, overwrite: bool):
        self.path = Path(out) / FILE
        self.done: dict[tuple, Cell] = {}
        if resume and overwrite:
            raise ConfigError("--resume and --overwrite exclude each other")
        if self.path.exists() and not (resume or overwrite):
            raise ConfigError(f"--out {self.path.parent} already holds an evaluation ({FILE}); "
                              f"pass --resume to finish it or --overwrite to replace it")
        if resume:
            self.done = self._read(identity)
        else:
            self.path.write_text(json.dumps(dict(kind="run", **identity)) + "\n")

    def _read(self, identity: dict[str, Any]) -> dict[tuple, Cell]:
        if not self.path.is_file():
            raise ConfigError(f"--resume: {self.path} does not exist (nothing to resume)")
        lines = self.path.read_text().splitlines()
        try:
            head = json.loads(lines[0]) if lines else {}
        except json.JSONDecodeError:
            head = {}
        head.pop("kind", None)
        if head != identity:
            diff = sorted(k for k in set(head) | set(identity) if head.get(k) != identity.get(k))
            raise ConfigError(f"--resume: {self.path} belongs to another evaluation (differs in "
                              f"{', '.join(diff)}); use the same options, or --overwrite")
        done = {}
        for i, line in enumerate(lines[1:], 2):
            try:
                key, cell = cell_from_record(json.loads(line))
            except (json.JSONDecodeError, KeyError, ValueError):
                if i == len(lines):   # the line being written when the run stopped
                    break
                raise ConfigError(f"{self.path}: line {i} is not a cell record") from None
            done[key] = cell
        self.path.write_text("".join(ln + "\n" for ln in lines[:1 + len(done)]))
        return done

    def append(self, key: tuple, cell: Cell) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(cell_record(key, cell)) + "\n")
