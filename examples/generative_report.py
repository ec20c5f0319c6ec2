"""Measure how well a pixel-level Fashion-MNIST DGM models its images (issue 15) and write
``report.json`` + ``samples.png`` + ``renderings.png`` to ``--out``.

Usage (from the repository root):

    python examples/generative_report.py --run RUN_DIR --out OUT [--n 1000] [--threads 1]
    python examples/generative_report.py --weights zoo/weights/fashion_dgm.safetensors --out OUT

Numbers (fixed seeds, the first ``--n`` test images in a seeded random order, as
``zoo.evaluation.generative`` defines them): rendering quality (cosine / PSNR of the MAP
rendering g_0 to the image, class = label and = prediction), clean accuracy of the CNN readout
on the full test set, class-conditional ancestral samples (model B) and the share the bundled
``fashion_cnn`` classifies as their class, the per-class generative classifier vs the CNN
readout, repair under noise / blur / occlusion (PSNR of each cycle's rendering vs the input's;
``--suite``: also the corruption suite's noise and blur families at severity 3).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def _load(args):
    from zoo.models import create_model
    from zoo.training import TrainConfig, get_recipe, load_checkpoint
    if args.weights:
        return create_model("fashion_dgm", pretrained=args.weights)
    best = load_checkpoint(Path(args.run) / "best.pt")
    config = TrainConfig(**best["config"])
    net = get_recipe(config.dataset).build(config)
    net.load_state_dict(best["model"])
    if "sigma2" in best:
        net.dgm.sigma2 = best["sigma2"]
    return net.eval()


def _grid(images: torch.Tensor, rows: int, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cols = len(images) // rows
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.8, rows * 0.85), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.imshow(images[i, 0].clamp(-1, 1).numpy(), cmap="gray", vmin=-1, vmax=1)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="a dgm train run directory (its best.pt)")
    src.add_argument("--weights", help="a fashion_dgm weights file")
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=1000, help="test images for the rendering metrics")
    p.add_argument("--n-classifier", type=int, default=300,
                   help="test images for the generative classifier (K MAP runs each)")
    p.add_argument("--cycles", type=int, default=1, help="engine cycles of the MAP runs")
    p.add_argument("--suite", action="store_true",
                   help="also repair on the corruption suite's noise and blur families "
                        "(severity 3, the first 500 images)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from zoo.data import load_fashion_mnist
    from zoo.evaluation import generative as G
    from zoo.models import create_model
    from zoo.training import evaluate

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net = _load(args)
    x, y = load_fashion_mnist("test")
    order = np.random.default_rng(args.seed).permutation(len(y))
    xs, ys = torch.from_numpy(x[order[:args.n]]), torch.from_numpy(y[order[:args.n]])
    report: dict = {"seed": args.seed, "n": args.n, "sigma2": net.dgm.sigma2,
                    "tau2": net.dgm.tau2, "test_images": "seeded permutation of the 10k test "
                                                          "set, first n"}
    t0 = time.perf_counter()
    report["clean_accuracy"] = evaluate(net, torch.from_numpy(x), torch.from_numpy(y))
    report["rendering"] = {f"cycles_{c}": G.rendering_quality(net, xs, ys, cycles=c)
                           for c in sorted({0, args.cycles})}
    report["log_joint_per_dim"] = G.log_joint_per_dim(net, xs, ys, cycles=0)
    samples, classes = G.class_samples(net, per_class=10, seed=args.seed)
    judge = create_model("fashion_cnn", pretrained=True)
    report["samples"] = {"per_class": 10, "judge": "fashion_cnn (bundled)",
                         "consistency": G.sample_consistency(judge, samples, classes),
                         "self_consistency": G.sample_consistency(net, samples, classes)}
    _grid(samples.view(10, 10, *samples.shape[1:]).transpose(0, 1).reshape(samples.shape),
          10, out / "samples.png", "ancestral samples of model B, one column per class")
    g0 = [G.map_rendering(net, xs[:20], ys[:20], cycles=c) for c in (0, args.cycles)]
    _grid(torch.cat([xs[:20]] + g0), 3, out / "renderings.png",
          f"test images; MAP renderings g0 (class = label) after 0 and {args.cycles} cycle(s)")
    nc = args.n_classifier
    report["generative_classifier"] = [
        G.generative_accuracy(net, xs[:nc], ys[:nc], cycles=c, tau2=t)
        for c, t in ((args.cycles, None), (args.cycles, 0.1), (2, 0.1))]
    report["repair"] = G.repair_gain(net, xs[:500], ys[:500], cycles=3, seed=args.seed)
    if args.suite:
        from zoo.corruptions import FAMILIES
        names = FAMILIES["noise"] + FAMILIES["blur"]
        suite = G.repair_gain(net, xs[:500], ys[:500], kinds=names, cycles=3, seed=args.seed,
                              severity=3)
        suite["family_psnr_gain_db"] = {f: float(np.mean([suite[k]["psnr_gain_db"]
                                                          for k in FAMILIES[f]]))
                                        for f in ("noise", "blur")}
        report["repair_suite_severity3"] = suite
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
