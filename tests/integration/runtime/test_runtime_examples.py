"""The distributed examples, loaded from their YAML and run through LocalExecutor."""

from __future__ import annotations

import json
from pathlib import Path

from runtime_support import Runs

from trainyard.core.models import TaskSpec
from trainyard.manifest import load_manifest, resolve_task

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def load_example(name: str, **params: str) -> TaskSpec:
    path = EXAMPLES / name / "task.yaml"
    spec, _ = resolve_task(load_manifest(path.read_bytes(), filename=path.name), params)
    return spec


def test_tf_ps_worker_completes_and_stops_its_ps(runs: Runs) -> None:
    spec = load_example("tf-ps-worker", steps="100")
    run = runs.start(spec, code_from=EXAMPLES / "tf-ps-worker")
    obs = runs.wait(run, timeout=60)
    assert obs.phase == "complete", obs
    statuses = {r.name: r.status for r in obs.replicas}
    assert statuses == {"ps-0": "stopped", "worker-0": "succeeded", "worker-1": "succeeded"}
    ps_log = [line.text for line in runs.executor.read_logs(run.run_id, "ps-0").lines]
    assert ps_log[0] == f"ps 0 serving on {obs.replicas[0].address}:2222"
    assert ps_log[-1].startswith("ps 0 stopping after 200 updates")  # it saw the SIGTERM
    for index in (0, 1):
        result = json.loads((run.output_dir / f"weights-worker-{index}.json").read_text())
        assert result["steps"] == 100
        assert result["loss"] < 0.25  # ~5.2 at w = 0; ~0.01 typically after 200 updates
        assert abs(result["w"][1] - -3.0) < 1.0
        log = [line.text for line in runs.executor.read_logs(run.run_id, f"worker-{index}").lines]
        assert log[-1].startswith(f"worker {index}: final loss")


def test_pytorch_ddp_ranks_end_with_identical_weights(runs: Runs) -> None:
    spec = load_example("pytorch-ddp", steps="8")
    run = runs.start(spec, code_from=EXAMPLES / "pytorch-ddp")
    obs = runs.wait(run, timeout=180)
    assert obs.phase == "complete", obs
    ranks = [json.loads((run.output_dir / f"weights-rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert {r["world_size"] for r in ranks} == {2}
    assert len(ranks[0]["weights"]) == 8 * 16 + 16 + 16 + 1
    assert ranks[0]["weights"] == ranks[1]["weights"]
    assert ranks[0]["loss"] != ranks[1]["loss"]  # different data shards, same model
