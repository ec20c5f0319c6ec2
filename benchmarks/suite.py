"""The benchmark suite of issue 7: configurations, side-by-side measurements, targets, growth.

For each configuration (the Fashion-MNIST CNN-F at feedback level 2 in exact mode and, as
bundled, in the original-compatible mode with its trained weights; the WRN-40-2 CNN-F at level 5)
and in one run: (a) plain forward, ours at 0 cycles vs the reference CNN in NCHW and
channels-last; (b) CNN-F inference at several cycle counts; (c) one training step, clean (CE at
every pass) and adversarial (PGD-7 generation on the first pass, then CNN-F's loss); (d) the
numpy float64 engine vs the torch float64 engine at the same batch; peak memory of inference.
Every group is timed interleaved (``timing.interleaved``); ratios use medians and the faster
reference memory format. Achieved GFLOP/s = 2 · counted MACs · batch / time.

Targets (issue 7 §3): inference and training GFLOP/s ≥ 0.87 × the reference's; plain forward
≤ 1.1 × reference time; numpy engine ≤ 15 × torch float64 time (Fashion-MNIST); inference peak
memory ≤ 1.5 × the reference's; a hybrid training step (issue 15) ≤ 1.5 × the CE step at the
same cycles.
"""
from __future__ import annotations

import math
import platform
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

import inference
from zoo.attacks import ce_loss, pgd
from zoo.models.cnnf import CNNF
from zoo.training.losses import adversarial_loss, clean_loss

from .macs import ATTACK_FACTOR, TRAIN_FACTOR, cnnf_macs
from .reference import reference_cnn
from .timing import interleaved, machine_peaks, peak_memory

GFLOPS_TARGET = 0.87
PLAIN_TARGET = 1.1
NUMPY_TARGET = 15.0
MEMORY_TARGET = 1.5
HYBRID_TARGET = 1.5
PGD = {"steps": 7, "eps": 0.2, "step_size": 0.05}  # input units ([-1, 1] images)


@dataclass(frozen=True)
class Config:
    """One model to benchmark: ``build(cycles)`` gives the CNN-F; batch sizes per measurement."""
    name: str
    build: Callable[[int], CNNF]
    batch: int
    cycles: tuple[int, ...]
    train_cycles: int
    numpy_batch: int
    numpy_cycles: int = 2
    growth: bool = False
    hybrid: bool = False
    targets: bool = True


def default_configs(quick: bool) -> list[Config]:
    """Fashion-MNIST (batch 256, ind 2, cycles 0/1/2/5, training at 5) in exact mode and, as the
    bundled ``fashion_cnnf`` (its card's architecture and weights), in the original-compatible
    mode (no issue-7 targets: they are stated for the exact engine), and WRN-40-2 (batch 64,
    ind 5, cycles 2); ``quick`` shrinks batches for CI."""
    from zoo.models.fashion import fashion_cnnf
    from zoo.models import create_model
    from zoo.models.hub import has_weights
    fashion = dict(batch=32 if quick else 256, cycles=(0, 1, 2, 5), train_cycles=5,
                   numpy_batch=4 if quick else 16, numpy_cycles=5)
    configs = [Config("fashion-mnist", lambda c: fashion_cnnf(cycles=c, ind=2), growth=True,
                      hybrid=True, **fashion)]
    if has_weights("fashion_cnnf"):
        configs.append(Config("fashion-mnist-original", lambda c: create_model(
            "fashion_cnnf", pretrained=True, cycles=c, mode="original"), targets=False,
            **fashion))
    try:
        from zoo.models.wrn import cnnf_wrn
    except ImportError:  # the WRN model is optional while it is being written
        return configs
    configs.append(Config("wrn-40-2", lambda c: cnnf_wrn(40, 2, cycles=c, ind=5),
                          batch=8 if quick else 64, cycles=(0, 1, 2), train_cycles=2,
                          numpy_batch=1, numpy_cycles=2))
    return configs


@dataclass
class _Setup:
    net: CNNF
    refs: dict
    x: torch.Tensor
    y: torch.Tensor
    macs: Callable[[int], int] = field(default=None)


def _setup(config: Config, batch: int, device: str, cycles: int) -> _Setup:
    net = config.build(cycles).to(device)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand((batch,) + net.dgm.input_shape, generator=g) * 2 - 1).to(device)
    y = torch.randint(0, net.dgm.classes, (batch,), generator=g).to(device)
    ref = reference_cnn(net.dgm).to(device)
    refs = {"ref_nchw": (ref, x),
            "ref_channels_last": (reference_cnn(net.dgm).to(device).to(
                memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last))}
    return _Setup(net, refs, x, y, lambda c: cnnf_macs(net.dgm, c)["total"])


def _infer(module, x, **kw):
    def run():
        with torch.no_grad():
            module(x, **kw)
    return run


def _train_step(loss_fn, params):
    opt = torch.optim.SGD(params, lr=1e-6, momentum=0.9)

    def run():
        opt.zero_grad(set_to_none=True)
        loss_fn().backward()
        opt.step()
    return run


def _frozen(module):
    class _Frozen:
        def __enter__(self):
            for p in module.parameters():
                p.requires_grad_(False)

        def __exit__(self, *exc):
            for p in module.parameters():
                p.requires_grad_(True)
    return _Frozen()


def _ours_adversarial(net: CNNF, x, y):
    def loss():
        with _frozen(net):
            x_adv = pgd(ce_loss(net.first_pass), x, y, **PGD).x_final
        return adversarial_loss(net.run(x), net.run(x_adv), y, clean_weight=1.0,
                                mse_weight=0.1)[0]
    return loss


def _ref_adversarial(ref, x, y):
    def loss():
        with _frozen(ref):
            x_adv = pgd(ce_loss(ref), x, y, **PGD).x_final
        return 0.5 * (F.cross_entropy(ref(x), y) + F.cross_entropy(ref(x_adv), y))
    return loss


def _best_ref(times: dict) -> str:
    return min((k for k in times if k.startswith("ref_")), key=lambda k: times[k]["median"])


def _round_ratios(ours: list[float], ref: list[float], macs_ratio: float) -> list[float]:
    """The GFLOP/s ratio of every interleaved round (ours and the reference timed back to
    back): how far the machine's noise moves the median ratio."""
    return [macs_ratio * r / o for o, r in zip(ours, ref, strict=True)]


def _gflops(macs_per_image: int, batch: int, seconds: float) -> float:
    return 2 * macs_per_image * batch / seconds / 1e9


def bench_config(config: Config, *, device: str, repeats: int, quick: bool) -> dict:
    """All measurements of one configuration; see the module docstring."""
    out: dict = {"name": config.name, "batch": config.batch, "targets": config.targets}
    s = _setup(config, config.batch, device, config.train_cycles)
    m = cnnf_macs(s.net.dgm, 0)
    out["macs_per_image"] = {"plain": m["plain"], "cycle": m["cycle"],
                             **{f"cycles_{c}": s.macs(c) for c in config.cycles}}
    ref_macs = m["plain"]

    # (a) plain forward and (b) inference at every cycle count, one interleaved group
    fns = {k: _infer(r, xr) for k, (r, xr) in s.refs.items()}
    fns.update({f"ours_cycles_{c}": _infer(s.net, s.x, cycles=c) for c in config.cycles})
    t = interleaved(fns, repeats=repeats, device=device)
    best = _best_ref(t)
    ref_time = t[best]["median"]
    ref_rate = _gflops(ref_macs, config.batch, ref_time)
    out["inference"] = {"reference": best, "ref_time_s": ref_time, "ref_gflops": ref_rate,
                        "ref_times": {k: t[k]["median"] for k in s.refs}, "runs": {}}
    for c in config.cycles:
        tc = t[f"ours_cycles_{c}"]["median"]
        rate = _gflops(s.macs(c), config.batch, tc)
        out["inference"]["runs"][c] = {"time_s": tc, "images_per_s": config.batch / tc,
                                       "gflops": rate, "gflops_ratio": rate / ref_rate,
                                       "gflops_ratio_per_round": _round_ratios(
                                           t[f"ours_cycles_{c}"]["times"], t[best]["times"],
                                           s.macs(c) / ref_macs)}
    out["plain_time_ratio"] = out["inference"]["runs"][0]["time_s"] / ref_time \
        if 0 in config.cycles else None

    # (c) training steps: clean and adversarial, each against the reference
    for kind, ours_loss, ref_loss, factor in (
            ("train_clean", lambda: clean_loss(s.net.forward_passes(s.x), s.y),
             lambda r, xr: (lambda: F.cross_entropy(r(xr), s.y)), TRAIN_FACTOR),
            ("train_adversarial", _ours_adversarial(s.net, s.x, s.y),
             lambda r, xr: _ref_adversarial(r, xr, s.y), None)):
        fns = {k: _train_step(ref_loss(r, xr), r.parameters()) for k, (r, xr) in s.refs.items()}
        fns["ours"] = _train_step(ours_loss, s.net.parameters())
        t = interleaved(fns, repeats=max(1, repeats - 2) if kind == "train_adversarial"
                        else repeats, device=device)
        best = _best_ref(t)
        if factor is None:  # PGD-7 on the plain pass + two training passes
            ours_m = ATTACK_FACTOR * PGD["steps"] * m["plain"] + \
                2 * TRAIN_FACTOR * s.macs(config.train_cycles)
            ref_m = ATTACK_FACTOR * PGD["steps"] * ref_macs + 2 * TRAIN_FACTOR * ref_macs
        else:
            ours_m, ref_m = factor * s.macs(config.train_cycles), factor * ref_macs
        ours_rate = _gflops(ours_m, config.batch, t["ours"]["median"])
        ref_rate_t = _gflops(ref_m, config.batch, t[best]["median"])
        out[kind] = {"cycles": config.train_cycles, "time_s": t["ours"]["median"],
                     "ref_time_s": t[best]["median"], "reference": best,
                     "images_per_s": config.batch / t["ours"]["median"],
                     "gflops": ours_rate, "ref_gflops": ref_rate_t,
                     "gflops_ratio": ours_rate / ref_rate_t}

    if config.hybrid:
        out["hybrid_vs_ce"] = bench_hybrid(s.net, s.x, s.y, config.train_cycles, repeats, device)

    # peak memory of inference vs the reference forward (same batch)
    ref_mod, ref_x = s.refs[out["inference"]["reference"]]
    ref_peak = peak_memory(_infer(ref_mod, ref_x), device)
    out["memory"] = {"ref_peak_bytes": ref_peak, "runs": {}}
    for c in config.cycles:
        peak = peak_memory(_infer(s.net, s.x, cycles=c), device)
        out["memory"]["runs"][c] = {"peak_bytes": peak, "ratio": peak / max(ref_peak, 1)}

    # (d) the numpy float64 reference engine vs the torch float64 engine
    out["numpy"] = bench_numpy(s.net, config.numpy_batch, config.numpy_cycles,
                               repeats=1 if quick else 2)
    return out


def bench_hybrid(net: CNNF, x, y, cycles: int, repeats: int, device: str) -> dict:
    """One training step of the hybrid objective (CE at every pass + λ·generative, E-step of
    one cycle with y = label) vs the CE-only step, same model, batch and cycles, interleaved
    (``zoo.training.objectives``)."""
    from zoo.training.objectives import Batch, make_objective
    batch = Batch(x, y)
    fns = {name: _train_step(lambda o=make_objective(name): o(net, batch)[0], net.parameters())
           for name in ("ce", "hybrid")}
    t = interleaved(fns, repeats=repeats, device=device)
    ce, hybrid = t["ce"]["median"], t["hybrid"]["median"]
    return {"cycles": cycles, "estep_cycles": 1, "ce_time_s": ce, "hybrid_time_s": hybrid,
            "ratio": hybrid / ce}


def bench_numpy(net: CNNF, batch: int, cycles: int, repeats: int) -> dict:
    """The numpy float64 engine vs the torch float64 engine (CPU) on the same inputs."""
    params_t = {k: v.detach().to("cpu", torch.float64) for k, v in net.params().items()}
    params_n = {k: v.numpy() for k, v in params_t.items()}
    x_n = np.random.default_rng(0).uniform(-1, 1, (batch,) + net.dgm.input_shape)
    x_t = torch.from_numpy(x_n)
    run = lambda p, x: (lambda: inference.alternating_map(net.dgm, p, x, cycles=cycles,
                                                          options=net.options, record="none"))
    with torch.no_grad():
        t = interleaved({"numpy": run(params_n, x_n), "torch_float64": run(params_t, x_t)},
                        repeats=repeats)
    tn, tt = t["numpy"]["median"], t["torch_float64"]["median"]
    return {"batch": batch, "cycles": cycles, "numpy_time_s": tn, "torch_time_s": tt,
            "ratio": tn / tt, "numpy_images_per_s": batch / tn}


def growth(config: Config, *, device: str, repeats: int, quick: bool) -> dict:
    """Inference time vs cycles (0..10) and vs batch size (1..512), with linear fits.

    The per-cycle slope is converted to MAC-equivalents with the reference's time per MAC
    (its plain forward, measured in the same group) and compared with the counted cycle MACs."""
    batch = 16 if quick else 64
    s = _setup(config, batch, device, 0)
    cycles = list(range(0, 11, 2 if quick else 1))
    ref = s.refs["ref_nchw"]
    fns = {"ref": _infer(*ref)}
    fns.update({c: _infer(s.net, s.x, cycles=c) for c in cycles})
    t = interleaved(fns, repeats=repeats, device=device)
    times = [t[c]["median"] for c in cycles]
    slope, intercept = np.polyfit(cycles, times, 1)
    sec_per_mac = t["ref"]["median"] / (cnnf_macs(s.net.dgm, 0)["plain"] * batch)
    per_cycle = slope / batch / sec_per_mac
    counted = cnnf_macs(s.net.dgm, 0)["cycle"]
    by_cycles = {"batch": batch, "cycles": cycles, "time_s": times, "slope_s": float(slope),
                 "intercept_s": float(intercept), "fit_r2": _r2(cycles, times, slope, intercept),
                 "per_cycle_mac_equivalents": float(per_cycle), "per_cycle_macs": counted,
                 "overhead": float(per_cycle / counted)}
    sizes = [1, 4, 16, 64] if quick else [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    c = 2
    times_b = []
    for n in sizes:
        sb = _setup(config, n, device, c)
        times_b.append(interleaved({"ours": _infer(sb.net, sb.x, cycles=c)},
                                   repeats=repeats, device=device)["ours"]["median"])
    bslope, bint = np.polyfit(sizes, times_b, 1)
    by_batch = {"cycles": c, "batch": sizes, "time_s": times_b,
                "per_image_s": float(bslope), "fixed_s": float(bint),
                "fit_r2": _r2(sizes, times_b, bslope, bint)}
    return {"vs_cycles": by_cycles, "vs_batch": by_batch}


def _r2(xs, ys, a, b) -> float:
    ys = np.asarray(ys, dtype=float)
    pred = a * np.asarray(xs, dtype=float) + b
    ss = float(((ys - ys.mean()) ** 2).sum())
    return 1.0 - float(((ys - pred) ** 2).sum()) / ss if ss > 0 else 1.0


def targets(result: dict) -> list[dict]:
    """Each issue-7 target with its measured value and whether it holds."""
    rows = []
    for cfg in result["configs"]:
        if not cfg.get("targets", True):
            continue
        n = cfg["name"]
        for c, run in cfg["inference"]["runs"].items():
            rows.append(_target(f"{n} inference cycles={c} GFLOP/s ratio", run["gflops_ratio"],
                                ">=", GFLOPS_TARGET))
        for kind in ("train_clean", "train_adversarial"):
            rows.append(_target(f"{n} {kind} GFLOP/s ratio", cfg[kind]["gflops_ratio"], ">=",
                                GFLOPS_TARGET))
        if cfg["plain_time_ratio"] is not None:
            rows.append(_target(f"{n} plain forward time ratio", cfg["plain_time_ratio"], "<=",
                                PLAIN_TARGET))
        if "hybrid_vs_ce" in cfg:
            rows.append(_target(f"{n} hybrid/CE training step time "
                                f"({cfg['hybrid_vs_ce']['cycles']} cycles)",
                                cfg["hybrid_vs_ce"]["ratio"], "<=", HYBRID_TARGET))
        if n == "fashion-mnist":
            rows.append(_target(f"{n} numpy/torch-float64 time", cfg["numpy"]["ratio"], "<=",
                                NUMPY_TARGET))
        for c, mem in cfg["memory"]["runs"].items():
            rows.append(_target(f"{n} inference cycles={c} peak memory ratio", mem["ratio"],
                                "<=", MEMORY_TARGET))
    return rows


def _target(name: str, value: float, op: str, bound: float) -> dict:
    ok = value >= bound if op == ">=" else value <= bound
    return {"target": name, "value": value, "bound": f"{op} {bound}", "holds": bool(ok)}


def run_suite(*, threads: int = 2, device: str = "cpu", quick: bool = False,
              configs: list[Config] | None = None, repeats: int | None = None,
              with_growth: bool = True, log: Callable[[str], None] = lambda s: None) -> dict:
    """Run every configuration (and the growth curves) and return the JSON-ready result."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    repeats = (3 if quick else 5) if repeats is None else repeats
    configs = default_configs(quick) if configs is None else configs
    result = {"machine": {"threads": threads, "device": device, "torch": torch.__version__,
                          "platform": platform.platform(), "processor": platform.processor()},
              "quick": quick, "repeats": repeats}
    log("machine peaks")
    result["machine"].update(machine_peaks(device, quick))
    result["configs"] = []
    for config in configs:
        log(f"config {config.name}")
        cfg = bench_config(config, device=device, repeats=repeats, quick=quick)
        if with_growth and config.growth:
            log(f"growth {config.name}")
            cfg["growth"] = growth(config, device=device, repeats=repeats, quick=quick)
        result["configs"].append(cfg)
    result["targets"] = targets(result)
    return result


def to_markdown(result: dict) -> str:
    """The report: machine, one table per configuration, growth fits, targets."""
    m = result["machine"]
    lines = [f"# dgm bench ({'quick' if result['quick'] else 'full'}; {m['device']}, "
             f"{m['threads']} threads, torch {m['torch']})", "",
             f"Machine peaks: conv {m['conv_gflops']:.1f} GFLOP/s, GEMM {m['gemm_gflops']:.1f} "
             f"GFLOP/s. Times are medians of {result['repeats']} interleaved repeats.", ""]
    for cfg in result["configs"]:
        inf = cfg["inference"]
        lines += [f"## {cfg['name']} (batch {cfg['batch']})", "",
                  f"MACs/image: plain {cfg['macs_per_image']['plain'] / 1e6:.2f} M, per cycle "
                  f"{cfg['macs_per_image']['cycle'] / 1e6:.2f} M. Reference: {inf['reference']} "
                  + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in inf["ref_times"].items()), "",
                  "| run | time (ms) | images/s | GFLOP/s | vs reference (per-round range) "
                  "| peak MiB (ratio) |",
                  "|---|---:|---:|---:|---:|---:|",
                  f"| reference plain forward | {inf['ref_time_s'] * 1e3:.1f} | "
                  f"{cfg['batch'] / inf['ref_time_s']:.0f} | {inf['ref_gflops']:.1f} | 1.00 | "
                  f"{cfg['memory']['ref_peak_bytes'] / 2 ** 20:.1f} |"]
        for c, run in inf["runs"].items():
            mem = cfg["memory"]["runs"][c]
            lines.append(f"| CNN-F inference, {c} cycles | {run['time_s'] * 1e3:.1f} | "
                         f"{run['images_per_s']:.0f} | {run['gflops']:.1f} | "
                         f"{run['gflops_ratio']:.2f} ({min(run['gflops_ratio_per_round']):.2f}"
                         f"–{max(run['gflops_ratio_per_round']):.2f}) | "
                         f"{mem['peak_bytes'] / 2 ** 20:.1f} "
                         f"({mem['ratio']:.2f}) |")
        for kind in ("train_clean", "train_adversarial"):
            r = cfg[kind]
            lines.append(f"| {kind.replace('_', ' ')} ({r['cycles']} cycles; ref "
                         f"{r['ref_time_s'] * 1e3:.0f} ms) | {r['time_s'] * 1e3:.1f} | "
                         f"{r['images_per_s']:.0f} | {r['gflops']:.1f} | "
                         f"{r['gflops_ratio']:.2f} | |")
        if "hybrid_vs_ce" in cfg:
            hy = cfg["hybrid_vs_ce"]
            lines.append(f"| train hybrid ({hy['cycles']} cycles, E-step {hy['estep_cycles']}; "
                         f"CE step {hy['ce_time_s'] * 1e3:.0f} ms) | "
                         f"{hy['hybrid_time_s'] * 1e3:.1f} | | | ×{hy['ratio']:.2f} the CE "
                         f"step | |")
        nb = cfg["numpy"]
        lines += [f"| numpy float64 engine (batch {nb['batch']}, {nb['cycles']} cycles; torch "
                  f"f64 {nb['torch_time_s'] * 1e3:.0f} ms) | {nb['numpy_time_s'] * 1e3:.1f} | "
                  f"{nb['numpy_images_per_s']:.1f} | | ×{nb['ratio']:.1f} slower | |", ""]
        if "growth" in cfg:
            gc, gb = cfg["growth"]["vs_cycles"], cfg["growth"]["vs_batch"]
            lines += [f"Growth vs cycles (batch {gc['batch']}): "
                      + ", ".join(f"{c}: {t * 1e3:.0f} ms" for c, t in zip(gc["cycles"],
                                                                          gc["time_s"]))
                      + f"; linear fit R² {gc['fit_r2']:.3f}, {gc['slope_s'] * 1e3:.1f} ms/cycle "
                      f"= {gc['per_cycle_mac_equivalents'] / 1e6:.1f} M MAC-equivalents/image "
                      f"(counted {gc['per_cycle_macs'] / 1e6:.1f} M, ×{gc['overhead']:.2f}).", "",
                      f"Growth vs batch ({gb['cycles']} cycles): "
                      + ", ".join(f"{n}: {t * 1e3:.1f} ms" for n, t in zip(gb["batch"],
                                                                         gb["time_s"]))
                      + f"; linear fit R² {gb['fit_r2']:.3f}, {gb['per_image_s'] * 1e3:.2f} "
                      f"ms/image + {gb['fixed_s'] * 1e3:.1f} ms.", ""]
    lines += ["## Targets (issue 7)", "", "| target | value | bound | holds |",
              "|---|---:|---|---|"]
    lines += [f"| {r['target']} | {r['value']:.2f} | {r['bound']} | "
              f"{'yes' if r['holds'] else 'NO'} |" for r in result["targets"]]
    return "\n".join(lines) + "\n"
