"""Likelihood diagnostics from Python: what the exact engine and CNN-F's heuristics do to the log
joint, step by step and term by term, on a few Fashion-MNIST test images (clean and PGD).

The model is ``--model`` (``fashion_cnnf``) with the hub's weights, or with the weights given by
``--checkpoint`` (a ``dgm train`` checkpoint ``.pt`` or a ``.safetensors`` export). τ² = σ²/9 keeps the observation term, so the objective depends on the image.

Prints the summary table, then, for the largest single-step decrease of the heuristics, which
terms of the log joint moved; writes the full report (JSONL, summary.md, figures) to ``--out``.

Run: ``python examples/diagnostics_demo.py [--checkpoint PATH] [--n-images 16]`` (about a minute
on one core for 16 images).
"""
from __future__ import annotations

import argparse

import torch

from zoo.data import FASHION_MNIST_CLASSES, load_fashion_mnist
from zoo.diagnostics import diagnose, format_summary, with_noise, write_report
from zoo.models import create_model
from zoo.training import load_trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fashion_cnnf")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--n-images", type=int, default=16)
    parser.add_argument("--out", default="out/diagnostics_demo")
    args = parser.parse_args()
    torch.set_num_threads(1)

    if args.checkpoint and args.checkpoint.endswith(".pt"):
        net, source = load_trained(args.checkpoint, args.model), args.checkpoint
    else:
        net = create_model(args.model, pretrained=args.checkpoint or True)
        source = args.checkpoint or "the hub's weights"
    model = with_noise(net.dgm, tau2=net.dgm.sigma2 / 9)
    params = {k: v.detach().double() for k, v in net.params().items()}  # float64: tight test
    images, labels = load_fashion_mnist("test")
    x = torch.from_numpy(images[:args.n_images]).double()
    y = torch.from_numpy(labels[:args.n_images])
    print(f"model {args.model} ({source}), {len(x)} test images, τ² = {model.tau2:.4g}")

    d = diagnose(model, params, x, y, variants=("exact", "original"), cycles=4, batch_size=16,
                 keep_examples=4)
    print(format_summary(d.summary))

    worst = max((r for r in d.steps if r.variant == "original"), key=lambda r: r.decrease)
    if worst.decreased:
        before = next(r for r in d.steps if (r.variant, r.condition, r.image, r.step) ==
                      (worst.variant, worst.condition, worst.image, worst.step - 1))
        print(f"largest decrease of the heuristics: image {worst.image} "
              f"({FASHION_MNIST_CLASSES[worst.label]}, {worst.condition}), cycle {worst.cycle}, "
              f"step {worst.name!r}: Δ log p = {-worst.decrease:.4g}")
        for name, value in worst.terms.items():
            print(f"  {name:>12}: {value - before.terms[name]:+.4g}")
    paths = write_report(d, args.out, model=model, params=params, x=x, labels=y,
                         meta={"model": args.model, "weights": source},
                         class_names=FASHION_MNIST_CLASSES)
    print(f"report: {paths['summary_md']}")


if __name__ == "__main__":
    main()
