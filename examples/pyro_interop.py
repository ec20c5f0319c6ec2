"""The DGM as a Pyro program: same program, same numbers (design README "the program is the source
of truth").

A tiny pixel-level DGM (random weights) on one real Fashion-MNIST test image: the alternating-MAP
engine finds a state (h, y, z, t); its log joint is then computed three ways — the closed form
(``DGM.log_joint``), our traced program (``dgm.program_log_joint``) and Pyro
(``poutine.trace(poutine.condition(to_pyro(...)))``'s ``log_prob_sum()``) — for normalisations B
and G (G without log Z_G: the net is far too large to enumerate). Then Pyro samples the model
ancestrally and the closed form scores Pyro's own draws.

Run: ``python examples/pyro_interop.py`` (about 5 s on one core).
"""
from __future__ import annotations

import torch
from pyro import poutine

from dgm import DGM, State, layers as L, program_log_joint, pyro_data, to_pyro
from inference import alternating_map
from zoo.data import FASHION_MNIST_CLASSES, load_fashion_mnist


def tiny_pixel_dgm() -> DGM:
    """conv 4×4/2 (4 channels) → switch → 2×2 max pool → dense 16 → switch → 10 classes."""
    return DGM([L.Conv2d(1, 4, 4, stride=2, padding=1), L.Switch(4), L.MaxPool(2), L.Flatten(),
                L.Dense(4 * 7 * 7, 16), L.Switch(16)],
               classes=10, sigma2=1.0, tau2=0.1, input_shape=(1, 28, 28))


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    images, labels = load_fashion_mnist("test")
    x = torch.from_numpy(images[:1]).to(torch.float64).reshape(1, 1, 28, 28)
    model = tiny_pixel_dgm()
    params = model.init("torch", seed=0, dtype=torch.float64)
    params = {k: v + 0.1 * torch.randn_like(v) if k.endswith("bias") else v
              for k, v in params.items()}
    state = alternating_map(model, params, x, cycles=3).state
    print(f"image 0: label {FASHION_MNIST_CLASSES[int(labels[0])]!r}, "
          f"MAP class {FASHION_MNIST_CLASSES[int(state.y[0])]!r} (random weights)")

    print(f"{'normalisation':>13} | {'closed form':>14} | {'our trace':>14} | {'Pyro trace':>14} "
          f"| max |diff|")
    for normalisation in ("B", "G"):
        closed = model.log_joint(params, x, state, normalisation).total
        ours, _ = program_log_joint(model, params, x, state, normalisation)
        fn = to_pyro(model, params, normalisation)
        conditioned = poutine.condition(fn, data=pyro_data(model, state, x))
        pyro_total = poutine.trace(conditioned).get_trace(1).log_prob_sum()
        diff = max(abs(ours - closed).item(), abs(pyro_total - closed.sum()).item())
        print(f"{normalisation:>13} | {closed.item():14.6f} | {ours.item():14.6f} | "
              f"{pyro_total.item():14.6f} | {diff:.1e}")
        assert diff <= 1e-9 * (1 + abs(closed.item())), "the three log joints disagree"

    n = 8
    tr = poutine.trace(to_pyro(model, params, "B")).get_trace(n)
    sampled = State(h=tr.nodes["h"]["value"], y=tr.nodes["y"]["value"],
                    z={p: tr.nodes[f"z:{p}"]["value"] > 0.5 for p in model.switch_sites},
                    t={p: tr.nodes[f"t:{p}"]["value"] for p in model.pool_sites})
    closed = model.log_joint(params, tr.nodes["x"]["value"], sampled, "B", observed="level0").total
    tr.compute_log_prob()
    per_example = sum(site["log_prob"] for name, site in tr.nodes.items()
                      if site["type"] == "sample" and name != "batch")
    print(f"\nPyro ancestral samples (B), n = {n}:")
    for name, site in tr.nodes.items():
        if site["type"] == "sample" and name != "batch":
            print(f"  {name:>4}: value {tuple(site['value'].shape)}, "
                  f"log_prob {tuple(site['log_prob'].shape)}")
    print(f"  classes drawn: {tr.nodes['y']['value'].tolist()}")
    print(f"  max |Pyro log p − closed form| over the samples: "
          f"{(per_example - closed).abs().max().item():.1e}")
    assert torch.allclose(per_example, closed, rtol=0, atol=1e-9 * (1 + closed.abs().max().item()))

if __name__ == "__main__":
    main()
