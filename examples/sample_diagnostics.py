"""Why class-conditional samples of the pixel DGM are not judged as their class (issue 15),
measured.

A sample of model B (``dgm.program.sample_b``, ``zoo.evaluation.generative.class_samples``) is
y, then the switches z and pool positions t drawn top-down from their priors
(p(z = 1 | ĝ) = σ(b ĝ), t uniform: dgm-math §1.3), rendered to g₀ (the mean image). Which of
the two carries the class in a rendering — the class template (y) or the gates (z, t)? Three
renderings of the same seeded test images, judged by the bundled ``fashion_cnn``:

* **MAP**: the image's own gates (plain pass, 0 cycles) and its label (the rendering of the
  card's rendering-quality numbers);
* **swapped class**: the image's own gates, a different class y' = (label + k) mod K: if the
  judge follows y', the template carries the class; if it follows the label, the gates do;
* **prior gates**: model B's ancestral samples (gates drawn from the prior given y).

Also per Switch layer: the share of switches on in the prior samples vs at the MAP state of
the test images, and how often two independent prior draws with the same y agree (50 % for
fair coins, 100 % for a deterministic prior); and the norm of the renderings (the images:
their own norm). Printed as a
table; float32, one thread.

Usage: PYTHONPATH=. python examples/sample_diagnostics.py [--n 500] [--seed 0]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=500, help="test images (seeded order)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)

    import inference
    from zoo.data import load_fashion_mnist
    from zoo.evaluation.generative import class_sample_state, psnr
    from zoo.models import create_model

    net = create_model("fashion_dgm", pretrained=True).eval()
    judge = create_model("fashion_cnn", pretrained=True).eval()
    model, params = net.dgm, net.params()
    k = model.classes
    x, y = load_fashion_mnist("test")
    order = np.random.default_rng(args.seed).permutation(len(y))[:args.n]
    xs, ys = torch.from_numpy(x[order]), torch.from_numpy(y[order])

    def judged(images: torch.Tensor) -> torch.Tensor:
        return judge(images).argmax(1)

    def norm(images: torch.Tensor) -> float:
        return float(images.flatten(1).norm(dim=1).mean())

    with torch.no_grad():
        res = inference.alternating_map(model, params, xs, cycles=0, options=net.options,
                                        observed_y=ys)
        state = res.state
        g_map, _ = model.render(params, state, keep_ghat=())
        shift = torch.from_numpy(np.random.default_rng(args.seed + 1).integers(1, k, len(ys)))
        y_swap = (ys + shift) % k
        g_swap, _ = model.render(params, state.replace(y=y_swap), keep_ghat=())
        per_class = -(-args.n // k)
        prior, again = (class_sample_state(net, per_class=per_class, seed=r)
                        for r in (args.seed, args.seed + 1))
        g_prior, hooks = model.render(params, prior, keep_ghat=model.switch_sites)
        c_prior = prior.y
        j_map, j_swap, j_prior = judged(g_map), judged(g_swap), judged(g_prior)
        rows = [
            ("test images themselves", float((judged(xs) == ys).float().mean()), None,
             norm(xs), None),
            ("MAP: own gates, own label", float((j_map == ys).float().mean()), None,
             norm(g_map), float(psnr(g_map, xs).mean())),
            ("own gates, swapped class y'", float((j_swap == y_swap).float().mean()),
             float((j_swap == ys).float().mean()), norm(g_swap), float(psnr(g_swap, xs).mean())),
            ("prior gates (ancestral samples)", float((j_prior == c_prior).float().mean()),
             None, norm(g_prior), None),
        ]
    print(f"fashion_dgm (sigma2 = {model.sigma2:.3g}), {args.n} seeded test images, judge "
          "fashion_cnn")
    print("| rendering | judged as its class y | judged as the image's label | mean norm "
          "| PSNR to the image |")
    print("| --- | --- | --- | --- | --- |")
    for name, acc, acc_label, n, db in rows:
        print(f"| {name} | {100 * acc:.1f} % | "
              f"{'' if acc_label is None else f'{100 * acc_label:.1f} %'} | {n:.1f} | "
              f"{'' if db is None else f'{db:.1f} dB'} |")
    print()
    print("| Switch layer | units | on at the MAP state (test images) | on in prior samples | "
          "same value in two prior draws (same y) | prior p(z = 1) = σ(b ĝ) in [0.4, 0.6] |")
    print("| --- | --- | --- | --- | --- | --- |")
    for site in model.switch_sites:
        z_map = state.z[site].float()
        z_prior, z_again = prior.z[site], again.z[site]
        bias = params[f"layers.{site}.bias"].view(1, -1, *([1] * (z_prior.dim() - 2)))
        p_on = torch.sigmoid(bias * hooks.ghat[site])
        print(f"| {site} | {z_map[0].numel()} | {100 * float(z_map.mean()):.1f} % | "
              f"{100 * float(z_prior.float().mean()):.1f} % | "
              f"{100 * float((z_prior == z_again).float().mean()):.1f} % | "
              f"{100 * float(((p_on - 0.5).abs() <= 0.1).float().mean()):.1f} % |")


if __name__ == "__main__":
    main()
