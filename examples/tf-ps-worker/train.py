"""Parameter-server training in plain Python sockets, wired the TensorFlow way.

One ``ps`` replica holds the weights of a linear model and serves them on its own address,
port 2222; every ``worker`` pulls the weights, computes a gradient on its own data and pushes
it back. Nothing here knows about trainyard: the cluster comes from the environment that every
distributed-TensorFlow job reads (``TF_CONFIG``, or Kibernetika's ``PS_NODES`` and
``REPLICA_INDEX``), and results go to ``$TRAINYARD_OUTPUT_DIR``.

    python train.py --role ps
    python train.py --role worker --steps 100
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import socketserver
import sys
import threading
import time
from pathlib import Path

TRUE_W = [2.0, -3.0, 0.5, 1.0]
TRUE_B = 0.7
LEARNING_RATE = 0.05
BATCH = 32
PS_PORT = 2222


def cluster() -> tuple[dict[str, list[str]], str, int]:
    """(cluster spec, my role, my index) from TF_CONFIG, else from *_NODES + REPLICA_INDEX."""
    if "TF_CONFIG" in os.environ:
        config = json.loads(os.environ["TF_CONFIG"])
        task = config["task"]
        return config["cluster"], task["type"], int(task["index"])
    spec = {"ps": [f"{a}:{PS_PORT}" for a in os.environ["PS_NODES"].split(",")]}
    return spec, "", int(os.environ.get("REPLICA_INDEX", "0"))


def split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


# ---- the parameter server ---------------------------------------------------------------


class Weights:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.w = [0.0] * len(TRUE_W)
        self.b = 0.0
        self.version = 0

    def snapshot(self) -> dict[str, object]:
        with self.lock:
            return {"w": list(self.w), "b": self.b, "version": self.version}

    def apply(self, grad_w: list[float], grad_b: float) -> int:
        with self.lock:
            self.w = [w - LEARNING_RATE * g for w, g in zip(self.w, grad_w, strict=True)]
            self.b -= LEARNING_RATE * grad_b
            self.version += 1
            return self.version


def serve(index: int, addresses: list[str]) -> None:
    weights = Weights()
    host, port = split(addresses[index])

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for line in self.rfile:
                request = json.loads(line)
                if request["op"] == "pull":
                    reply: dict[str, object] = weights.snapshot()
                else:
                    reply = {"version": weights.apply(request["grad_w"], request["grad_b"])}
                self.wfile.write(json.dumps(reply).encode() + b"\n")

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer((host, port), Handler)
    server.daemon_threads = True

    def on_term(signum: int, frame: object) -> None:
        # trainyard stops the ps (SIGTERM) once every worker has finished.
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, on_term)
    print(f"ps {index} serving on {host}:{port}", flush=True)
    server.serve_forever(poll_interval=0.1)
    final = weights.snapshot()
    print(f"ps {index} stopping after {final['version']} updates: w={final['w']} b={final['b']}")


# ---- a worker ---------------------------------------------------------------------------


def connect(address: str, timeout: float = 60.0) -> socket.socket:
    host, port = split(address)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection((host, port), timeout=10)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # the ps may still be starting


def batch(rng: random.Random, size: int) -> list[tuple[list[float], float]]:
    rows = []
    for _ in range(size):
        x = [rng.uniform(-1, 1) for _ in TRUE_W]
        y = sum(a * b for a, b in zip(x, TRUE_W, strict=True)) + TRUE_B + rng.gauss(0, 0.01)
        rows.append((x, y))
    return rows


def loss_and_grad(
    w: list[float], b: float, rows: list[tuple[list[float], float]]
) -> tuple[float, list[float], float]:
    loss, grad_w, grad_b = 0.0, [0.0] * len(w), 0.0
    for x, y in rows:
        err = sum(a * c for a, c in zip(x, w, strict=True)) + b - y
        loss += err * err
        grad_w = [g + 2 * err * a for g, a in zip(grad_w, x, strict=True)]
        grad_b += 2 * err
    n = len(rows)
    return loss / n, [g / n for g in grad_w], grad_b / n


def work(index: int, ps_addresses: list[str], steps: int) -> None:
    rng = random.Random(index)
    evaluation = batch(random.Random(1000), 256)
    conn = connect(ps_addresses[0])
    stream = conn.makefile("rwb")

    def call(request: dict[str, object]) -> dict[str, object]:
        stream.write(json.dumps(request).encode() + b"\n")
        stream.flush()
        return dict(json.loads(stream.readline()))

    print(f"worker {index}: {steps} steps against ps {ps_addresses[0]}", flush=True)
    for step in range(1, steps + 1):
        current = call({"op": "pull"})
        w, b = list(current["w"]), float(current["b"])  # type: ignore[call-overload, arg-type]
        _, grad_w, grad_b = loss_and_grad(w, b, batch(rng, BATCH))
        call({"op": "push", "grad_w": grad_w, "grad_b": grad_b})
        if step % max(1, steps // 10) == 0 or step == steps:
            loss, _, _ = loss_and_grad(w, b, evaluation)
            print(f"worker {index}: step {step}/{steps} loss {loss:.6f}", flush=True)
    final = call({"op": "pull"})
    w, b = list(final["w"]), float(final["b"])  # type: ignore[call-overload, arg-type]
    loss, _, _ = loss_and_grad(w, b, evaluation)
    print(f"worker {index}: final loss {loss:.6f}", flush=True)
    out = Path(os.environ.get("TRAINYARD_OUTPUT_DIR", "."))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"weights-worker-{index}.json").write_text(
        json.dumps({"w": w, "b": b, "loss": loss, "steps": steps, "worker": index})
    )
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--role", choices=["ps", "worker"])
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    spec, role, index = cluster()
    role = args.role or role
    if role == "ps":
        serve(index, spec["ps"])
    elif role == "worker":
        work(index, spec["ps"], args.steps)
    else:
        parser.error("no role: pass --role or set TF_CONFIG")
    return 0


if __name__ == "__main__":
    sys.exit(main())
