"""One evaluation end to end: attack cells, gradient-masking checks, repair strips, and the
outputs in a directory (``cells.jsonl`` as the cells finish, then ``results.jsonl``,
``table.md``, PNG figures)."""
from __future__ import annotations

import platform
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Mapping

import torch
from torch import Tensor

from backends import ConfigError
from zoo import plotting
from zoo._outdir import check_writable
from zoo.jsonl import write_jsonl
from zoo.models.cnnf import CNNF

from . import figures
from .masking import CheckConfig, run_checks
from .cells import CellLog, run_identity
from .repair import repair, strip_positions
from .report import markdown, records
from .runner import EvalConfig, Evaluation, evaluate


def _git_hash() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=Path(__file__).parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def run_evaluation(models: Mapping[str, CNNF], x: Tensor, y: Tensor, config: EvalConfig,
                   out: str | Path, *, check: CheckConfig | None = CheckConfig(),
                   header: Mapping | None = None, strip_n: int = 6,
                   progress: bool | None = None,
                   log: Callable[[str], None] = print, resume: bool = False,
                   overwrite: bool = False) -> tuple[Evaluation, list[dict]]:
    """Evaluate, check and write everything into ``out`` (created; checked writable first).

    Args:
        models: name -> model (a CNN has ``cycles = 0``); names label the table rows.
        x, y: the evaluation subset (N, C, H, W) in [-1, 1] and labels (N,).
        config: attacks, ε list, PGD settings.
        check: sizes of the gradient-masking checks (None skips them).
        header: extra fields recorded in the config record (dataset, subset indices, ...).
        strip_n: images in the repair strips (>= 1; :func:`strip_positions`).
        resume: reuse the cells of ``out/cells.jsonl`` (same evaluation, else ``ConfigError``);
        overwrite: replace an evaluation already in ``out`` (without either, that is an error).
    Returns:
        ``(evaluation, records)``; writes results.jsonl, table.md and PNG figures.
    """
    if strip_n < 1:
        raise ConfigError(f"--strip-n must be >= 1, got {strip_n}")
    out = check_writable(out, "--out")
    strip = strip_positions(y, strip_n)
    # (the first n, as before class-diverse strips: stored runs of that kind still resume)
    shown = strip_n if strip.tolist() == list(range(min(strip_n, len(y)))) else strip.tolist()
    cells = CellLog(out, run_identity(models, x, y, config, shown), resume=resume,
                    overwrite=overwrite)
    if cells.done:
        log(f"resuming: {len(cells.done)} finished cells read from {cells.path}")
    start = time.perf_counter()
    ev = evaluate(models, x, y, config, keep=strip, progress=progress, log=log,
                  done=cells.done, on_cell=cells.append)
    checks = {} if check is None else run_checks(models, x, y, ev, check, log=log)
    cycles = {m: net.cycles for m, net in models.items()}
    e_max = max(config.eps)
    repairs = {}
    if e_max > 0:
        for m, r in ev.rows():
            for a in ("first", "e2e"):
                cell = ev.cells.get((m, r, a, e_max))
                if cycles[m] and r == config.readouts[0] and cell is not None:
                    repairs[(m, r, a, e_max)] = repair(models[m], x[strip], cell.x_adv)
    meta = dict(header or {}, config=asdict(config),
                checks=None if check is None else asdict(check), n_examples=len(y),
                models={m: dict(cycles=net.cycles, readout=net.readout,
                                options=asdict(net.options)) for m, net in models.items()},
                torch=torch.__version__, python=platform.python_version(),
                threads=torch.get_num_threads(), git=_git_hash())
    recs = records(ev, cycles, checks, repairs)
    meta["seconds"] = round(time.perf_counter() - start, 1)
    write_jsonl(out / "results.jsonl", [dict(kind="config", **meta), *recs])
    table = markdown(ev, cycles, recs, meta)
    (out / "table.md").write_text(table)
    paths = figures.write_all(recs, repairs, out) if plotting.available() else []
    log(table)
    if not plotting.available():
        log(plotting.MISSING)
    log("wrote " + ", ".join(str(p) for p in [out / "results.jsonl", out / "table.md"] + paths))
    return ev, recs
