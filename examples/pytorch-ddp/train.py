"""Data-parallel training with real ``torch.distributed`` (gloo, CPU).

Each replica is one rank. The rendezvous is PyTorch's ``env://``: ``MASTER_ADDR``,
``MASTER_PORT``, ``RANK`` and ``WORLD_SIZE`` come from trainyard's replica environment, so this
script runs unchanged under ``torchrun``-style launchers too. Every rank starts from a
different random init on purpose: DDP broadcasts rank 0's weights, then averages gradients, so
all ranks must end with identical weights. Each writes them to
``$TRAINYARD_OUTPUT_DIR/weights-rank<R>.json``.

    python train.py --steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.05)
    args = parser.parse_args()

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="env://", timeout=timedelta(seconds=120))
    rank, world = dist.get_rank(), dist.get_world_size()
    print(
        f"rank {rank}/{world}: rendezvous at {os.environ['MASTER_ADDR']}:"
        f"{os.environ['MASTER_PORT']}",
        flush=True,
    )

    torch.manual_seed(1234 + rank)  # deliberately different: DDP must make them agree
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
    ddp = DistributedDataParallel(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=args.lr)
    data = torch.Generator().manual_seed(rank)  # each rank sees its own shard
    loss = torch.tensor(0.0)
    for step in range(1, args.steps + 1):
        x = torch.randn(32, 8, generator=data)
        y = 0.5 * x.sum(dim=1, keepdim=True)
        loss = nn.functional.mse_loss(ddp(x), y)
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        if step % max(1, args.steps // 5) == 0 or step == args.steps:
            print(f"rank {rank}: step {step}/{args.steps} loss {loss.item():.6f}", flush=True)

    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    out = Path(os.environ.get("TRAINYARD_OUTPUT_DIR", "."))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"weights-rank{rank}.json").write_text(
        json.dumps(
            {
                "rank": rank,
                "world_size": world,
                "steps": args.steps,
                "loss": loss.item(),
                "weights": weights.tolist(),
            }
        )
    )
    dist.barrier()
    print(f"rank {rank}: done, final loss {loss.item():.6f}", flush=True)
    # Every rank has written its weights and passed the barrier. Leave without tearing gloo
    # down: when rank 0 (which hosts the rendezvous store) exits first, another rank's
    # destroy_process_group or interpreter shutdown can abort in gloo's C++ threads
    # ("terminate called without an active exception", SIGABRT) after the work is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
