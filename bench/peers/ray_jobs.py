"""Ray's job submission, timed the way bench/launch.py times trainyard (runs in the peer venv).

Starts `ray start --head` on loopback, submits the same trivial command N times with
JobSubmissionClient.submit_job, and prints JSON: seconds from submit to RUNNING and to SUCCEEDED.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from ray.job_submission import JobStatus, JobSubmissionClient


def main() -> None:
    runs = int(sys.argv[1])
    # "python" in the commands means this interpreter, as it does for trainyard replicas.
    running_cmd, complete_cmd = (c.replace("python", sys.executable, 1) for c in sys.argv[2:4])
    ray = os.path.join(os.path.dirname(sys.executable), "ray")
    subprocess.run(
        [
            ray,
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            "--port=0",
            "--dashboard-host=127.0.0.1",
            "--dashboard-port=8265",
            "--include-dashboard=true",
            "--disable-usage-stats",
            "--num-cpus=2",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = _client()
        out: dict[str, list[float]] = {"running": [], "complete": []}
        # one warm-up of each
        for key, cmd in (("running", running_cmd), ("complete", complete_cmd)):
            want = JobStatus.RUNNING if key == "running" else JobStatus.SUCCEEDED
            for i in range(runs + 1):
                t0 = time.perf_counter()
                job = client.submit_job(entrypoint=cmd)
                while True:
                    status = client.get_job_status(job)
                    if status == want or status.is_terminal():
                        break
                    time.sleep(0.005)
                took = time.perf_counter() - t0
                if status != want:
                    raise SystemExit(f"ray job {job} ended {status}, wanted {want}")
                if i:
                    out[key].append(took)
                if key == "running":
                    client.stop_job(job)
        print(json.dumps(out))
    finally:
        subprocess.run(
            [ray, "stop", "--force"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )


def _client() -> JobSubmissionClient:
    deadline = time.time() + 60
    while True:
        try:
            return JobSubmissionClient("http://127.0.0.1:8265")
        except Exception:  # the dashboard takes a few seconds to come up
            if time.time() > deadline:
                raise
            time.sleep(0.5)


if __name__ == "__main__":
    main()
