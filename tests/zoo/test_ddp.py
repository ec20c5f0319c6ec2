"""Data-parallel training (zoo.training.distributed): 2 CPU processes on gloo take the same
steps as one process on the same global batch (gradients and resulting weights)."""
from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from zoo.models.wrn import cnnf_wrn
from zoo.training.distributed import Dist
from zoo.training.losses import clean_loss

WORLD, BATCH, STEPS = 2, 8, 2


def _tiny():
    torch.manual_seed(0)
    return cnnf_wrn(depth=10, widen=1, cycles=1, ind=0, seed=0)


def _data():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(STEPS, BATCH, 3, 32, 32, generator=g) * 2 - 1
    y = torch.randint(0, 10, (STEPS, BATCH), generator=g)
    return x, y


def _train(info: Dist, net) -> list[dict[str, torch.Tensor]]:
    """STEPS SGD steps on this rank's share; returns the averaged gradients of every step."""
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x, y = _data()
    grads = []
    for s in range(STEPS):
        xb, yb = info.shard(x[s], y[s])
        opt.zero_grad()
        clean_loss(net.forward_passes(xb), yb).backward()
        info.average_gradients(net.parameters())
        grads.append({k: p.grad.clone() for k, p in net.named_parameters()})
        opt.step()
    return grads


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=WORLD)
    try:
        info = Dist(rank=rank, world=WORLD)
        net = _tiny()
        if rank == 1:  # a different init on rank 1 must be overwritten by the broadcast
            with torch.no_grad():
                for p in net.parameters():
                    p.add_(1.0)
        info.broadcast_parameters(net)
        grads = _train(info, net)
        torch.save({"grads": grads, "weights": net.state_dict()}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_equals_single_process(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    single = _tiny()
    ref_grads = _train(Dist(), single)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for res in ranks:
        for step, ref in zip(res["grads"], ref_grads):
            for k in ref:
                torch.testing.assert_close(step[k], ref[k], rtol=1e-4, atol=1e-6)
        for k, v in single.state_dict().items():
            torch.testing.assert_close(res["weights"][k], v, rtol=1e-4, atol=1e-6)
    # the check can fail: the ranks' own (un-averaged) gradients differ from the global one
    net = _tiny()
    x, y = _data()
    clean_loss(net.forward_passes(x[0, :BATCH // 2]), y[0, :BATCH // 2]).backward()
    k = next(iter(ref_grads[0]))
    assert not torch.allclose(dict(net.named_parameters())[k].grad, ref_grads[0][k])


def test_shard_and_noop():
    info = Dist(rank=1, world=2)
    x = torch.arange(6)
    (part,) = info.shard(x)
    assert part.tolist() == [3, 4, 5]
    with pytest.raises(ValueError, match="divisible"):
        info.shard(torch.arange(5))
    assert Dist().shard(x)[0] is x and not Dist().enabled and Dist().is_main
