"""Launch latency: submit → every replica running, and submit → complete.

For a trivial command with 1 and 8 replicas, median and p90 over --runs submissions, printed
beside the floor (spawning `python -c pass` directly) and beside Ray's job submission on the same
machine (`ray start --head` on loopback, JobSubmissionClient.submit_job, same command), run from
the peer virtualenv given by --peer-python.

    .venv/bin/python bench/launch.py --peer-python .venv-bench/bin/python [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import httpx
from common import summary, trainyard_server

PY = sys.executable
RUNNING_CMD = f'{PY} -c "import time; time.sleep(30)"'
COMPLETE_CMD = f"{PY} -c pass"


def manifest(name: str, replicas: int, command: str) -> str:
    return (
        f"name: {name}\nresources:\n- name: worker\n  replicas: {replicas}\n"
        f"  command: '{command}'\n"
    )


def floor(runs: int) -> list[float]:
    out = []
    for _ in range(runs + 1):
        t0 = time.perf_counter()
        subprocess.run([PY, "-c", "pass"], check=True)
        out.append(time.perf_counter() - t0)
    return out[1:]


def time_until(client: httpx.Client, text: str, want: str, runs: int) -> list[float]:
    out = []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        r = client.post("/api/v1/projects/default/runs", json={"manifest": text, "parameters": {}})
        r.raise_for_status()
        run_id = r.json()["id"]
        while True:
            status = client.get(f"/api/v1/runs/{run_id}").json()["status"]
            if status == want or status in ("complete", "error", "stopped"):
                break
            time.sleep(0.002)
        took = time.perf_counter() - t0
        if status != want:
            raise SystemExit(f"run {run_id} ended {status}, wanted {want}")
        if want == "running":
            client.post(f"/api/v1/runs/{run_id}/stop").raise_for_status()
            while client.get(f"/api/v1/runs/{run_id}").json()["status"] != "stopped":
                time.sleep(0.01)
        if i:  # the first is a warm-up
            out.append(took)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--peer-python", help="python of a virtualenv with ray[default]; omit to skip")
    args = ap.parse_args()

    base = floor(args.runs)
    print(f"floor: spawn `python -c pass`            {summary(base)}")
    results: dict[str, list[float]] = {}
    with trainyard_server() as server, httpx.Client(base_url=server.url, timeout=30) as client:
        for replicas in (1, 8):
            for want, cmd in (("running", RUNNING_CMD), ("complete", COMPLETE_CMD)):
                key = f"{replicas}:{want}"
                results[key] = time_until(
                    client, manifest(f"bench-{replicas}-{want}", replicas, cmd), want, args.runs
                )
                label = f"trainyard {replicas} replica(s) submit → {want}"
                print(f"{label:42s}{summary(results[key])}")
    over = statistics.median(results["1:running"]) - statistics.median(base)
    print(
        f"\ntrainyard 1 replica submit → running, beyond the floor: p50 {over * 1000:.1f} ms"
        " (target < 100 ms)"
    )
    if args.peer_python:
        peer = subprocess.run(
            [
                args.peer_python,
                "bench/peers/ray_jobs.py",
                str(args.runs),
                'python -c "import time; time.sleep(30)"',
                "python -c pass",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        ray = json.loads(peer.stdout.strip().splitlines()[-1])
        print(f"{'ray job submit → RUNNING':42s}{summary(ray['running'])}")
        print(f"{'ray job submit → SUCCEEDED':42s}{summary(ray['complete'])}")
        ratio_run = statistics.median(ray["running"]) / statistics.median(results["1:running"])
        ratio_done = statistics.median(ray["complete"]) / statistics.median(results["1:complete"])
        print(f"\nRay / trainyard, submit → running:  {ratio_run:.1f}× (target ≥ 5×)")
        print(f"Ray / trainyard, submit → complete: {ratio_done:.1f}×")


if __name__ == "__main__":
    main()
