"""Where a hybrid training step's time goes at 0 cycles (issue 15's speed target).

The bundled pixel DGM (``fashion_dgm``, 0 cycles: the CE step is one small forward/backward)
on a batch of 64 training images, one thread, every part measured round-robin with the others
(``benchmarks.timing.interleaved``) and reported as a multiple of the CE step:

* ``ce step``: cross-entropy of the plain pass, forward + backward;
* ``hybrid step``: CE + λ·(−log p_B)/D with a 1-cycle E-step (``make_objective("hybrid")``,
  training's default ``--estep-cycles 1``);
* ``e-step``: that E-step alone, the alternating-MAP engine at y = label, no gradient
  (``Generative.e_step``);
* ``m-step fwd`` / ``m-step fwd+bwd``: −log p_B/D at the E-step's fixed latents, without / with
  its backward (``Generative.m_step_loss``);
* ``render`` / ``render+bwd``: the top-down rendering g₀ of those latents alone (dgm-math §1.2),
  without / with a backward of Σ g₀².

The last line is the floor it implies: any hybrid step renders and differentiates the
rendering once on top of the CE step, so ``1 + render+bwd / ce`` bounds the ratio from below.

    PYTHONPATH=. python benchmarks/hybrid_parts.py [--repeats 9]
"""
from __future__ import annotations

import argparse

import torch

from benchmarks.timing import interleaved
from zoo import create_model
from zoo.data import load_fashion_mnist
from zoo.training.objectives import Batch, Generative, make_objective


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    net = create_model("fashion_dgm", pretrained=True)
    x, y = load_fashion_mnist("train")
    x, y = torch.as_tensor(x[:args.batch]), torch.as_tensor(y[:args.batch]).long()
    batch, generative = Batch(x, y), Generative(cycles=1)
    groups = generative.e_step(net, batch)
    model, params, state = net.dgm, net.params(), groups[0][2][0]

    def backward_of(loss_fn):
        def step():
            net.zero_grad()
            loss_fn().backward()
        return step

    def no_grad(fn):
        def run():
            with torch.no_grad():
                fn()
        return run

    ce, hybrid = make_objective("ce"), make_objective("hybrid")
    parts = {
        "ce step": backward_of(lambda: ce(net, batch)[0]),
        "hybrid step": backward_of(lambda: hybrid(net, batch)[0]),
        "e-step": lambda: generative.e_step(net, batch),
        "m-step fwd": no_grad(lambda: generative.m_step_loss(net, groups, args.batch)),
        "m-step fwd+bwd": backward_of(lambda: generative.m_step_loss(net, groups, args.batch)),
        "render": no_grad(lambda: model.render(params, state)),
        "render+bwd": backward_of(lambda: model.render(params, state)[0].square().sum()),
    }
    times = interleaved(parts, repeats=args.repeats, warmup=1)
    base = times["ce step"]["median"]
    print(f"fashion_dgm, batch {args.batch}, 0 cycles (E-step: 1), 1 thread, {args.repeats} interleaved rounds")
    for name, t in times.items():
        print(f"{name:>15}: {1e3 * t['median']:7.1f} ms  ×{t['median'] / base:5.2f} of the CE step")
    floor = 1 + times["render+bwd"]["median"] / base
    print(f"floor of any hybrid step (CE + one rendering with its backward): ×{floor:.2f}")


if __name__ == "__main__":
    main()
