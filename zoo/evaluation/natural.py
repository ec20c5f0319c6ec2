"""Natural corruptions: accuracy per model × corruption × severity × feedback pass, and whether
the feedback's renderings move toward the clean image (the seed's "blurry cat").

For every (corruption, severity) the corrupted subset is made once (``zoo.corruptions``, seeded
per image, or read from the canonical CIFAR-10-C files) and scored by every model. Per cell:
accuracy of the scored readout with its Wilson interval, accuracy of every pass 0..C, the paired
pass-0 vs last-pass counts (McNemar), and for CNN-F models the repair metrics per cycle c: the
rendering g₀ᶜ against the clean image's representation f(x) at the feedback level (level 0),
next to the corrupted input's own f(x̃): cosine and relative L2 ‖·− f(x)‖ / ‖f(x)‖; PSNR and
SSIM in pixel space when level 0 is the input (ind = 0). With ``fixed_point`` every image runs
until its state stops changing (at most ``max_cycles``), and the cell reports per image the
cycles used and whether it converged; per-pass lists are then padded with each image's fixed
point (a batch stops only when all of its images converged).

Records are appended to ``results.jsonl`` as each cell finishes (kind "cell"), then the
summaries (``natural_report``), the timing (wall and process CPU seconds, corruption generation,
per model), ``table.md`` and the figures.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from backends import ConfigError, DGMError, InputError
from zoo import plotting
from zoo.attacks import accuracy_with_interval, mcnemar_p
from zoo.corruptions import (CORRUPTIONS, SEVERITIES, check_images, corrupt, family,
                             parse_corruptions, parse_severities, to_signed, to_unit)
from zoo.models.cnnf import CNNF

from . import natural_figures, natural_report
from .natural_report import CLEAN
from .repair import Repair, cosine, psnr, relative_l2, ssim, strip_positions
from .repair import repair as repair_strip   # (score_cell's ``repair`` is its metrics)

# canonical corrupted images for (corruption, severity) in [0, 1], or None to generate them
Canonical = Callable[[str, int], "np.ndarray | None"]


@dataclass(frozen=True)
class NaturalConfig:
    """What to run.

    Attributes:
        corruptions: names (``zoo.corruptions.CORRUPTIONS``); severities: each in 1..5.
        seed: seeds the corruptions (``zoo.corruptions.corrupt``).
        batch_size: images per forward batch.
        fixed_point: run every image to its fixed point (cap ``max_cycles``) instead of the
            model's cycles.
        strip_n: images shown in the repair strips; strips: corruptions that get one (at the
            highest severity; fixed cycles only).
    """
    corruptions: tuple[str, ...] = CORRUPTIONS
    severities: tuple[int, ...] = SEVERITIES
    seed: int = 0
    batch_size: int = 250
    fixed_point: bool = False
    max_cycles: int = 50
    strip_n: int = 6
    strips: tuple[str, ...] = ("gaussian_noise", "defocus_blur", "fog", "occlusion")

    def __post_init__(self):
        parse_corruptions(self.corruptions)
        parse_severities(self.severities)
        if self.batch_size < 1 or self.max_cycles < 1 or self.strip_n < 0:
            raise ConfigError(f"batch_size and max_cycles must be >= 1 and strip_n >= 0, got "
                              f"{self.batch_size}, {self.max_cycles}, {self.strip_n}")


@dataclass
class CellResult:
    """Per image outcomes of one model on one corrupted subset (N images, P passes, C cycles).

    Attributes:
        correct: (N,) scored readout correct; pass_correct: (P, N).
        repair: name -> (C, N) per cycle or (N,) for the input ("cos_input", "rel_input",
            "cos_render", "rel_render", and "psnr_*", "ssim_*" in pixel space); empty for a CNN.
        fixed_at: (N,) first cycle that changed nothing (0: none), fixed-point runs only.
        strip: a ``Repair`` of ``keep`` images (``strip_positions``: one per class first;
            fixed cycles, CNN-F), for the figures.
    """
    correct: Tensor
    pass_correct: Tensor
    repair: dict
    fixed_at: Tensor | None
    strip: Repair | None


def _pad(rows: list[Tensor], length: int) -> Tensor:
    """Stack per-pass rows (each (n,)), repeating the last one up to ``length``."""
    return torch.stack(rows + [rows[-1]] * (length - len(rows)))


def pixel_space(net: CNNF) -> bool:
    """Whether the feedback reaches the pixels (ind = 0: no encoder)."""
    return not net.dgm.encoder


@torch.no_grad()
def score_cell(net: CNNF, x_clean: Tensor, x_in: Tensor, y: Tensor, config: NaturalConfig,
               keep: int = 0) -> CellResult:
    """Run ``net`` on ``x_in`` (corrupted, [-1, 1]) in batches; see ``CellResult``."""
    fp = config.fixed_point and not net.is_cnn
    bs = min(config.batch_size, 50) if fp else config.batch_size  # (renderings of 50 cycles)
    cycles = config.max_cycles if fp else net.cycles
    parts: list[dict] = []
    for i in range(0, len(y), bs):
        xb, cb = x_in[i:i + bs], x_clean[i:i + bs]
        part: dict = {}
        if net.is_cnn:
            passes = net.forward_passes(xb)
        else:
            params = net.params()
            with torch.inference_mode():
                res = net.run(xb, cycles=cycles, until_fixed_point=fp, renderings=True,
                              converged=fp)
                f_clean = net.dgm.encode(params, cb)
                g = res.renderings
                part = {"cos_input": cosine(res.x_obs, f_clean),
                        "rel_input": relative_l2(res.x_obs, f_clean),
                        "cos_render": [cosine(gc, f_clean) for gc in g],
                        "rel_render": [relative_l2(gc, f_clean) for gc in g]}
                if pixel_space(net):
                    part.update(psnr_input=psnr(xb, cb), ssim_input=ssim(xb, cb),
                                psnr_render=[psnr(gc, cb) for gc in g],
                                ssim_render=[ssim(gc, cb) for gc in g])
                if fp:
                    part["fixed_at"] = res.fixed_at.clone()
                passes = [p.clone() for p in res.logits]
                del res, g
        part["passes"] = [p.argmax(1) == y[i:i + bs] for p in passes]
        part["scored"] = net.readout_logits(passes).argmax(1) == y[i:i + bs]
        parts.append(part)
    n_pass = max(len(p["passes"]) for p in parts)
    pass_correct = torch.cat([_pad(p["passes"], n_pass) for p in parts], 1)
    correct = pass_correct[-1] if fp else torch.cat([p["scored"] for p in parts])
    repair = {}
    for key in parts[0]:
        if key.endswith("_input"):
            repair[key] = torch.cat([p[key] for p in parts])
        elif key.endswith("_render"):
            repair[key] = torch.cat([_pad(p[key], n_pass - 1) for p in parts], 1)
    fixed_at = torch.cat([p["fixed_at"] for p in parts]) if fp else None
    shown = strip_positions(y, keep) if keep and not fp and not net.is_cnn else None
    strip = None if shown is None else repair_strip(net, x_clean[shown], x_in[shown])
    return CellResult(correct, pass_correct, repair, fixed_at, strip)


def _mean_sd(v: Tensor) -> dict:
    v = v.double()
    return {"mean": float(v.mean()), "sd": float(v.std()) if len(v) > 1 else 0.0, "n": len(v)}


def cell_record(model: str, corruption: str, severity: int, source: str, res: CellResult,
                seconds: float) -> dict:
    """The JSON record of one cell (means over images; paired counts for the summaries)."""
    first, last = res.pass_correct[0], res.pass_correct[-1]
    b01, b10 = int((~first & last).sum()), int((first & ~last).sum())
    rec = dict(kind="cell", model=model, corruption=corruption,
               family=CLEAN if corruption == CLEAN else family(corruption), severity=severity,
               source=source, **accuracy_with_interval(res.correct),
               pass_acc=[float(p.float().mean()) for p in res.pass_correct],
               pass0_vs_last=dict(b01=b01, b10=b10, p_value=mcnemar_p(b01, b10)),
               seconds=round(seconds, 2))
    r = res.repair
    if r:
        last_rel, last_cos = r["rel_render"][-1], r["cos_render"][-1]
        rec["repair"] = dict(
            cos_input=float(r["cos_input"].mean()),
            cos_render=[float(c.mean()) for c in r["cos_render"]],
            rel_l2_input=float(r["rel_input"].mean()),
            rel_l2_render=[float(c.mean()) for c in r["rel_render"]],
            closer=float((last_rel < r["rel_input"]).double().mean()),
            delta_rel_l2=_mean_sd(r["rel_input"] - last_rel),
            delta_cos=_mean_sd(last_cos - r["cos_input"]))
        for m in ("psnr", "ssim"):
            if f"{m}_input" in r:
                rec["repair"][f"{m}_input"] = float(r[f"{m}_input"].mean())
                rec["repair"][f"{m}_render"] = [float(c.mean()) for c in r[f"{m}_render"]]
    if res.fixed_at is not None:
        used = torch.where(res.fixed_at > 0, res.fixed_at, res.pass_correct.shape[0] - 1)
        rec["fixed_point"] = dict(converged=float((res.fixed_at > 0).double().mean()),
                                  cycles_mean=float(used.double().mean()),
                                  cycles_median=float(used.double().median()),
                                  cycles_max=int(used.max()))
    return rec


def check_inputs(models: Mapping[str, CNNF], x: Tensor, y: Tensor) -> np.ndarray:
    """One ``DGMError`` for a bad batch before any work (``InputError``: the images;
    ``ConfigError``: a model for other inputs); returns x in [0, 1] as numpy."""
    if not isinstance(x, Tensor) or not isinstance(y, Tensor) or len(x) != len(y) or not len(y):
        raise InputError("x and y must be non-empty tensors of the same length")
    x01 = to_unit(x.detach().cpu().numpy())
    try:
        check_images(x01, "x (mapped to [0, 1])")
    except DGMError as err:
        raise InputError(f"{err}; x must be (N, C, H, W) in [-1, 1]") from None
    for m, net in models.items():
        if tuple(x.shape[1:]) != tuple(net.dgm.input_shape):
            raise ConfigError(f"model {m!r} takes inputs {tuple(net.dgm.input_shape)}, the "
                              f"images are {tuple(x.shape[1:])}")
    return x01


def run_natural(models: Mapping[str, CNNF], x: Tensor, y: Tensor, config: NaturalConfig,
                out: str | Path, *, ids=None, canonical: Canonical | None = None,
                header: Mapping | None = None, progress: bool | None = None,
                log: Callable[[str], None] = print) -> list[dict]:
    """Evaluate ``models`` on the clean subset and on every (corruption, severity) of
    ``config``; write ``results.jsonl`` cell by cell, the summaries, ``table.md`` and figures.

    Args:
        models: name -> model (the CNN baseline of mCE is the first with ``cycles = 0``).
        x, y: the subset (N, C, H, W) in [-1, 1] and labels (N,); ids: the images' ids (seed
            their corruptions; default 0..N−1).
        canonical: ``(corruption, severity) -> images in [0, 1] or None`` (canonical files).
    Returns:
        every record written (config, cells, summaries).
    """
    x01 = check_inputs(models, x, y)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for net in models.values():
        net.eval()
    ids = np.arange(len(y)) if ids is None else np.asarray(ids)
    plan = [(CLEAN, 0)] + [(c, s) for c in config.corruptions for s in config.severities]
    cost = {m: (config.max_cycles if config.fixed_point and net.cycles else net.cycles) + 1
            for m, net in models.items()}
    recs = [dict(kind="config", **dict(header or {}), config=asdict(config), n=len(y),
                 models={m: dict(cycles=net.cycles, readout=net.readout,
                                 options=asdict(net.options), pixel_space=pixel_space(net))
                         for m, net in models.items()})]
    strips: dict = {}
    corrupt_s = 0.0
    start, cpu_start = time.perf_counter(), time.process_time()
    bar = tqdm(total=len(plan) * sum(cost.values()) * len(y), unit="img·pass", smoothing=0.1,
               disable=None if progress is None else not progress, dynamic_ncols=True)
    with open(out / "results.jsonl", "w") as f:
        f.write(json.dumps(recs[0]) + "\n")
        try:
            for corruption, severity in plan:
                source, xc = "clean", x
                if corruption != CLEAN:
                    pixels = canonical(corruption, severity) if canonical else None
                    source = "generated" if pixels is None else "canonical"
                    if pixels is None:
                        t0 = time.perf_counter()
                        pixels = corrupt(x01, corruption, severity, seed=config.seed,
                                         indices=ids)
                        corrupt_s += time.perf_counter() - t0
                    xc = torch.from_numpy(to_signed(pixels))
                for m, net in models.items():
                    t0 = time.perf_counter()
                    bar.set_description(f"{m} {corruption} s{severity}")
                    strip = corruption in config.strips and severity == max(config.severities)
                    res = score_cell(net, x, xc, y, config, keep=config.strip_n if strip else 0)
                    rec = cell_record(m, corruption, severity, source, res,
                                      time.perf_counter() - t0)
                    if res.strip is not None:
                        strips[(m, corruption, severity)] = res.strip
                    f.write(json.dumps(rec) + "\n")
                    f.flush()
                    recs.append(rec)
                    bar.update(cost[m] * len(y))
        finally:
            bar.close()
        seconds = time.perf_counter() - start
        summary = natural_report.summaries(recs)
        timing = dict(kind="timing", seconds=round(seconds, 1),
                      images_per_s=round(len(plan) * len(models) * len(y) / seconds, 1),
                      threads=torch.get_num_threads(), corrupt_seconds=round(corrupt_s, 1),
                      cpu_seconds=round(time.process_time() - cpu_start, 1),
                      model_seconds={m: round(sum(d["seconds"] for d in recs[1:]
                                                  if d["model"] == m), 1) for m in models})
        for rec in summary + [timing]:
            f.write(json.dumps(rec) + "\n")
    recs += summary + [timing]
    table = natural_report.markdown(recs)
    (out / "table.md").write_text(table)
    paths = natural_figures.write_all(recs, strips, out) if plotting.available() else []
    log(table)
    if not plotting.available():
        log(plotting.MISSING)
    log(f"{len(plan) * len(models) * len(y)} image evaluations in {seconds:.0f} s = "
        f"{timing['images_per_s']:.0f} images/s ({torch.get_num_threads()} threads)")
    log("wrote " + ", ".join(str(p) for p in [out / "results.jsonl", out / "table.md"] + paths))
    return recs
