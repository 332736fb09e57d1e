"""Linear regression by SGD in plain Python, tracked with the trainyard SDK.

Inside a run (``trainyard run task.yaml``), ``ty.init()`` finds the run, the server and the
token in the environment. Logging costs about a microsecond a call: points are buffered and a
background thread sends them; ``ty.finish()`` (also done at exit) sends the rest.

    python train.py --steps 100 --lr 0.05
"""

from __future__ import annotations

import argparse
import json
import random

import trainyard as ty

TRUE_W = [2.0, -3.0, 0.5]
TRUE_B = 0.7
BATCH = 16


def sample(rng: random.Random) -> tuple[list[float], float]:
    x = [rng.uniform(-1, 1) for _ in TRUE_W]
    return x, sum(w * xi for w, xi in zip(TRUE_W, x, strict=True)) + TRUE_B + rng.gauss(0, 0.1)


def mse(w: list[float], b: float, data: list[tuple[list[float], float]]) -> float:
    return sum(
        (sum(wi * xi for wi, xi in zip(w, x, strict=True)) + b - y) ** 2 for x, y in data
    ) / len(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.05)
    args = ap.parse_args()

    ty.init()
    ty.log_params({"lr": args.lr, "steps": args.steps, "batch": BATCH, "model": "linear"})

    rng = random.Random(0)
    validation = [sample(rng) for _ in range(200)]
    w, b = [0.0] * len(TRUE_W), 0.0
    for step in range(args.steps):
        batch = [sample(rng) for _ in range(BATCH)]
        grad_w, grad_b = [0.0] * len(w), 0.0
        for x, y in batch:
            err = sum(wi * xi for wi, xi in zip(w, x, strict=True)) + b - y
            grad_w = [g + 2 * err * xi / BATCH for g, xi in zip(grad_w, x, strict=True)]
            grad_b += 2 * err / BATCH
        w = [wi - args.lr * g for wi, g in zip(w, grad_w, strict=True)]
        b -= args.lr * grad_b
        ty.log_metric("train/loss", mse(w, b, batch), step=step)
        if step % 10 == 9 or step == args.steps - 1:
            val = mse(w, b, validation)
            ty.log_metrics({"val/loss": val, "val/rmse": val**0.5}, step=step)

    final = mse(w, b, validation)
    print(f"final validation loss {final:.4f} after {args.steps} steps")
    # The model itself, as an artifact of the run (stored on the server before this returns).
    with open("model.json", "w") as f:
        json.dump({"w": w, "b": b, "val_loss": final}, f)
    ty.log_artifact("model.json", "model")
    ty.finish()


if __name__ == "__main__":
    main()
