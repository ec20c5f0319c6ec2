"""Why the exact engine's later cycles leave the image (issue 15), measured.

The exact engine maximises model G's joint (dgm-math §1.5), whose prior carries a factor
exp(‖g₀‖²/(2σ²)) that cancels the Gaussian's −‖g₀‖²/(2σ²): its objective is
J = s_y(h; z, t) − ‖h‖²/(2σ²) with s_y = ⟨h, g₀⟩/σ² + the bias terms (§2.1), linear in the
rendering, so the z/t-steps keep switching on units whose rendering correlates with h however
large g₀ gets. At τ² = ∞ the exact h-step also sets h = g₀ (λ = τ²/(σ² + τ²) = 1, §3.4): after
the first pass the image is no longer evidence. J rises at every cycle (the monotonicity
theorem) while the rendering grows away from the image and log p_B *at the image* (model B,
h = x̃: ``inference.evidence_state``) falls; a finite ``--tau2`` keeps h near x̃ but the
renderings still grow. Printed per cycle, float64, y = the label, the first ``--n`` test
images in the seeded order of ``examples/generative_report.py``.

Usage: PYTHONPATH=. python examples/engine_drift.py [--n 200] [--cycles 3] [--tau2 inf]
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--cycles", type=int, default=3)
    p.add_argument("--tau2", type=float, default=math.inf, help="observation noise τ²")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)

    import inference
    from zoo.data import load_fashion_mnist
    from zoo.diagnostics import with_noise
    from zoo.evaluation.generative import psnr
    from zoo.models import create_model

    net = create_model("fashion_dgm", pretrained=True).eval().double()
    model, params = with_noise(net.dgm, args.tau2), net.params()
    x, y = load_fashion_mnist("test")
    order = np.random.default_rng(args.seed).permutation(len(y))[:args.n]
    xs, ys = torch.from_numpy(x[order]).double(), torch.from_numpy(y[order])
    dim = math.prod(model.level0_shape)
    print(f"fashion_dgm, sigma2 = {model.sigma2:.4g}, tau2 = {model.tau2:g}, {args.n} test "
          f"images, |x| = {float(xs.flatten(1).norm(dim=1).mean()):.2f}")
    print("cycle | |g0| | PSNR(g0, x) dB | engine objective J / D | log p_B at the image / D "
          "(of which Gaussian)")
    with torch.no_grad():
        for c in range(args.cycles + 1):
            res = inference.alternating_map(model, params, xs, cycles=c, options=net.options,
                                            record="cycle", converged=False, observed_y=ys)
            j = np.asarray(res.trajectory.objectives())[-1]
            state = inference.evidence_state(model, res.x_obs, res.state)
            lj = model.log_joint(params, res.x_obs, state, "B", observed="level0")
            g0, _ = model.render(params, state, keep_ghat=())
            print(f"{c} | {float(g0.flatten(1).norm(dim=1).mean()):.2f} | "
                  f"{float(psnr(g0, xs).mean()):.2f} | {j.mean() / dim:.3f} | "
                  f"{float(lj.total.mean()) / dim:.3f} ({float(lj.terms['gauss'].mean()) / dim:.3f})")


if __name__ == "__main__":
    main()
