"""Resource samples taken by the supervisor: real replicas with children, orphans, churn and
memory; the GPU path through a stand-in ``pynvml`` (no GPU exists on the machines this
suite runs on); and the sampler's arithmetic on a hand-made ``/proc``."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from runtime_support import Run, Runs, fresh_run_id, resource, task

from trainyard.executors.env import build_launch_request
from trainyard.executors.local import LocalExecutor
from trainyard.executors.local_resources import read_resource_chunk
from trainyard.runtime.gpustats import GpuReader
from trainyard.runtime.resources import ResourceSampler, scan_processes

INTERVAL = 0.3


@pytest.fixture
def executor(tmp_path: Path) -> LocalExecutor:
    """Resource samples every 0.3 s (the default is 5 s)."""
    return LocalExecutor(
        tmp_path / "runs",
        restart_backoff_seconds=0.1,
        sample_interval=0.1,
        resource_interval=INTERVAL,
    )


def samples(run: Run) -> list[dict[str, Any]]:
    path = run.run_dir / "resources.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def by_replica(run: Run) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for s in samples(run):
        out.setdefault(s["replica"], []).append(s)
    return out


# The replica's shell runs tree.py, which starts a CPU burner, a child holding 120 MiB, and
# an orphan (its parent exits at once, so it is re-parented to the supervisor) holding
# 120 MiB; tree.py itself sleeps. Only a sampler that counts the whole tree, orphan included,
# sees the burner's CPU and 240 MiB.
TREE = """
    import os, sys, time
    role = sys.argv[1] if len(sys.argv) > 1 else "root"
    if role == "burn":
        end = time.time() + 3.0
        while time.time() < end:
            pass
    elif role == "hold":
        data = bytearray(120 * 1024 * 1024)
        for i in range(0, len(data), 4096):
            data[i] = 1  # resident, not just reserved
        print("holding", flush=True)
        time.sleep(3.0)
    else:
        import subprocess
        burn = subprocess.Popen([sys.executable, __file__, "burn"])
        hold = subprocess.Popen([sys.executable, __file__, "hold"])
        if os.fork() == 0:  # the orphan: its parent exits right away
            if os.fork() == 0:
                os.execv(sys.executable, [sys.executable, __file__, "hold"])
            os._exit(0)
        os.wait()
        burn.wait()
        hold.wait()
        time.sleep(0.5)
"""


def test_samples_cover_the_whole_process_tree_orphans_included(runs: Runs) -> None:
    run = runs.start(task(resource("worker", "python tree.py")), files={"tree.py": TREE})
    obs = runs.wait(run, timeout=60)
    assert obs.phase == "complete", obs.reason
    got = by_replica(run)
    assert list(got) == ["worker-0"]
    series = got["worker-0"]
    assert [s["seq"] for s in series] == list(range(len(series)))
    assert len(series) >= 5  # ~3.5 s at 0.3 s, the first one ~0.3 s after the start
    memory = [s["values"]["memory_mb"] for s in series]
    cpu = [s["values"]["cpu_percent"] for s in series]
    # Both 120 MiB holders at once (the orphan too), plus the interpreters.
    assert max(memory) >= 240, memory
    # The burner is a child: the root sleeps, so only a tree-wide sum sees this.
    assert max(cpu) >= 50, cpu
    times = [s["time"] for s in series]
    assert times == sorted(times)
    assert all(set(s["values"]) == {"cpu_percent", "memory_mb"} for s in series)
    # Nothing went wrong along the way.
    assert not [m for m in run.messages() if "resource" in m or "GPU" in m]


def test_sampling_survives_processes_vanishing_mid_sample(runs: Runs) -> None:
    """Hundreds of short-lived processes come and go while the sampler reads /proc."""
    churn = "i=0; while [ $i -lt 1500 ]; do /bin/true; i=$((i+1)); done"
    run = runs.start(task(resource("worker", churn, replicas=2)))
    obs = runs.wait(run, timeout=120)
    assert obs.phase == "complete", obs.reason
    got = by_replica(run)
    assert sorted(got) == ["worker-0", "worker-1"]
    for name, series in got.items():
        assert [s["seq"] for s in series] == list(range(len(series))), name
        assert len(series) >= 1
    assert not [m for m in run.messages() if "resource" in m]


def test_a_restarted_replica_goes_on_numbering_its_samples(runs: Runs) -> None:
    from trainyard.core.models import RestartPolicy

    flaky = """
        import os, sys, time
        path = os.path.join(os.environ["TRAINYARD_OUTPUT_DIR"], "attempts")
        with open(path, "a") as f:
            f.write("x")
        time.sleep(1.0)
        sys.exit(0 if len(open(path).read()) >= 2 else 3)
    """
    spec = task(resource("worker", "python flaky.py", restart_policy=RestartPolicy.ON_FAILURE))
    run = runs.start(spec, files={"flaky.py": flaky})
    obs = runs.wait(run, timeout=60)
    assert obs.phase == "complete", obs.reason
    series = by_replica(run)["worker-0"]
    assert [s["seq"] for s in series] == list(range(len(series)))
    assert len(series) >= 4  # two attempts of ~1 s each


# ---- GPUs, through a stand-in pynvml -------------------------------------------------------

FAKE_PYNVML = """
    # A stand-in for nvidia-ml-py: no GPU exists on the machines this suite runs on.
    import os
    MARK = os.environ.get("FAKE_NVML_MARK")
    if MARK:
        open(MARK, "a").write("imported\\n")
    NVML_TEMPERATURE_GPU = 0
    FAIL = os.environ.get("FAKE_NVML_FAIL")
    UUIDS = ["GPU-11111111-aaaa", "GPU-22222222-bbbb", "GPU-33333333-cccc"]

    class _Util:
        def __init__(self, i): self.gpu = 40 + i
    class _Mem:
        def __init__(self, i): self.used = (1000 + i) * 1048576; self.total = 32 * 1073741824

    def nvmlInit():
        if FAIL:
            raise RuntimeError(FAIL)
    def nvmlShutdown(): pass
    def nvmlDeviceGetCount(): return len(UUIDS)
    def nvmlDeviceGetHandleByIndex(i): return i
    def nvmlDeviceGetUUID(h): return UUIDS[h].encode()
    def nvmlDeviceGetName(h): return b"Tesla V100-SXM2-32GB"
    def nvmlDeviceGetUtilizationRates(h): return _Util(h)
    def nvmlDeviceGetMemoryInfo(h): return _Mem(h)
    def nvmlDeviceGetPowerUsage(h):
        if h == 2:
            raise RuntimeError("Not Supported")  # some boards: left out, never 0
        return 250000 + h
    def nvmlDeviceGetTemperature(h, sensor): return 60 + h
"""


def _start_with_gpus(
    runs: Runs, tmp_path: Path, gpus: dict[str, list[str]], command: str = "sleep 1.5"
) -> Run:
    run_id = fresh_run_id()
    run_dir = runs.executor.run_dir(run_id)
    code = run_dir / "code"
    code.mkdir(parents=True)
    spec = task(resource("worker", command, replicas=len(gpus)))
    request = build_launch_request(
        run_id=run_id,
        run_ref=f"default/t#{run_id}",
        project="default",
        task="t",
        build_id=1,
        spec=spec,
        code_dir=code,
        run_dir=run_dir,
        training_dir=tmp_path / "training",
        server_url="http://127.0.0.1:9",
        python_executable=sys.executable,
        base_env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
        gpus=gpus,
    )
    runs.executor.launch(request)
    run = Run(run_id=run_id, run_dir=run_dir, code_dir=code)
    runs.started.append(run)
    return run


@pytest.fixture
def fake_nvml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Puts the stand-in pynvml first on the supervisors' PYTHONPATH; returns the file its
    import writes to."""
    lib = tmp_path / "fake-nvml"
    lib.mkdir()
    (lib / "pynvml.py").write_text(textwrap.dedent(FAKE_PYNVML))
    mark = tmp_path / "nvml-imported"
    monkeypatch.setenv("PYTHONPATH", f"{lib}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("FAKE_NVML_MARK", str(mark))
    return mark


def test_gpu_readings_are_keyed_by_position_in_cuda_visible_devices(
    runs: Runs, tmp_path: Path, fake_nvml: Path
) -> None:
    """worker-0 has NVML GPUs 2 and 0, in that order, with a simulated GPU between them:
    gpu/0 is NVML's GPU 2, gpu/2 its GPU 0, and the simulated one has no keys at all."""
    gpus = {
        "worker-0": ["GPU-33333333-cccc", "GPU-sim-0000", "GPU-11111111-aaaa"],
        "worker-1": [],
    }
    run = _start_with_gpus(runs, tmp_path, gpus)
    obs = runs.wait(run, timeout=60)
    assert obs.phase == "complete", obs.reason
    got = by_replica(run)
    first = got["worker-0"][0]["values"]
    assert {k: v for k, v in first.items() if k.startswith("gpu/")} == {
        "gpu/0/utilization_percent": 42.0,
        "gpu/0/memory_mb": 1002.0,
        "gpu/0/temperature_c": 62.0,  # no power_w: NVML says "not supported" for it
        "gpu/2/utilization_percent": 40.0,
        "gpu/2/memory_mb": 1000.0,
        "gpu/2/power_w": 250.0,
        "gpu/2/temperature_c": 60.0,
    }
    assert all(not k.startswith("gpu/") for s in got["worker-1"] for k in s["values"])
    assert not [e for e in run.events if e.kind == "warning"]


def test_simulated_gpus_only_never_load_nvml(runs: Runs, tmp_path: Path, fake_nvml: Path) -> None:
    run = _start_with_gpus(runs, tmp_path, {"worker-0": ["GPU-sim-0000", "GPU-sim-0001"]})
    obs = runs.wait(run, timeout=60)
    assert obs.phase == "complete", obs.reason
    series = by_replica(run)["worker-0"]
    assert series and all(set(s["values"]) == {"cpu_percent", "memory_mb"} for s in series)
    assert not fake_nvml.exists()
    assert not [e for e in run.events if e.kind == "warning"]


def test_nvml_failure_is_one_warning_then_cpu_and_memory_only(
    runs: Runs, tmp_path: Path, fake_nvml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NVML_FAIL", "Driver Not Loaded")
    gpus = {"worker-0": ["GPU-11111111-aaaa"], "worker-1": ["GPU-22222222-bbbb"]}
    run = _start_with_gpus(runs, tmp_path, gpus)
    obs = runs.wait(run, timeout=60)
    assert obs.phase == "complete", obs.reason  # metrics never fail a run
    warnings = [e.message for e in run.events if e.kind == "warning"]
    assert warnings == [
        "GPU metrics are unavailable: NVML is unavailable: Driver Not Loaded; resource "
        "metrics of this run have CPU and memory only"
    ]
    got = by_replica(run)
    assert sorted(got) == ["worker-0", "worker-1"]
    assert all(set(s["values"]) == {"cpu_percent", "memory_mb"} for v in got.values() for s in v)


# ---- the sampler on a hand-made /proc -------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def write_stat(
    root: Path,
    pid: int,
    *,
    ppid: int,
    session: int,
    ticks: int,
    start: int,
    rss_pages: int,
    state: str = "S",
    comm: str = "python",
) -> None:
    """A /proc/<pid>/stat line as Linux writes it (52 fields); utime holds ``ticks``."""
    fields = [str(pid), f"({comm})", state, str(ppid), str(session), str(session)]
    fields += ["0", "-1", "4194304", "0", "0", "0", "0", str(ticks), "0", "0", "0"]
    fields += ["20", "0", "1", "0", str(start), "1000000", str(rss_pages)]
    fields += ["0"] * (52 - len(fields))
    (root / str(pid)).mkdir(parents=True, exist_ok=True)
    (root / str(pid) / "stat").write_text(" ".join(fields) + "\n")


def read_back(path: Path) -> list[dict[str, Any]]:
    chunk = read_resource_chunk(path, 0)
    assert chunk.skipped == 0
    return [{"replica": s.replica, "seq": s.seq, "time": s.time, **s.values} for s in chunk.samples]


def test_cpu_is_percent_of_one_cpu_over_the_tree_with_pid_reuse_and_vanishing(
    tmp_path: Path,
) -> None:
    proc = tmp_path / "proc"
    # Replica root 100 (session 100); 101 its child; 102 a child of 101 that called setsid;
    # 104 an orphan of the session re-parented to the supervisor (50); 107 a zombie of the
    # session; 103 someone else's process; 105 vanished (no stat); 106 a torn stat.
    write_stat(proc, 100, ppid=50, session=100, ticks=10, start=1000, rss_pages=256)
    write_stat(proc, 101, ppid=100, session=100, ticks=150, start=1001, rss_pages=512)
    write_stat(proc, 102, ppid=101, session=102, ticks=50, start=1002, rss_pages=1024)
    write_stat(proc, 103, ppid=1, session=103, ticks=999, start=5, rss_pages=99999)
    write_stat(proc, 104, ppid=50, session=100, ticks=30, start=1003, rss_pages=256)
    (proc / "105").mkdir()
    (proc / "106").mkdir()
    (proc / "106" / "stat").write_text("")
    write_stat(proc, 107, ppid=101, session=100, ticks=20, start=1004, rss_pages=0, state="Z")
    (proc / "self").mkdir()  # not a pid: ignored
    out = tmp_path / "resources.jsonl"
    warnings: list[str] = []
    sampler = ResourceSampler(
        str(out), 1.0, warnings.append, proc_root=str(proc), clock=lambda: 1234.5
    )
    sampler.add("worker-0", 100, [], now=9.0)
    assert sampler.next_due() == 10.0  # the first sample a second after the start
    assert sampler.sample(9.5) == 0  # not due yet
    assert sampler.sample(10.0) == 1
    # 10 + 150 + 50 + 30 + 20 ticks over 1 s; 256 + 512 + 1024 + 256 pages.
    rss_mb = round((256 + 512 + 1024 + 256) * PAGE / 2**20, 2)
    assert read_back(out) == [
        {
            "replica": "worker-0",
            "seq": 0,
            "time": 1234.5,
            "cpu_percent": round(260 / TICK * 100, 2),
            "memory_mb": rss_mb,
        }
    ]
    # Half a second later: 101 used 100 more ticks, 102 ended, 108 appeared (new: all its
    # 20 ticks count), and 104's pid was reused by a new process (start 2000) with 5 ticks.
    write_stat(proc, 101, ppid=100, session=100, ticks=250, start=1001, rss_pages=512)
    (proc / "102" / "stat").unlink()
    write_stat(proc, 108, ppid=101, session=100, ticks=20, start=1500, rss_pages=0)
    write_stat(proc, 104, ppid=50, session=100, ticks=5, start=2000, rss_pages=0)
    sampler.interval = 0.5
    assert sampler.sample(10.5) == 0  # due at 11.0 (the interval it had then)
    assert sampler.sample(11.0) == 1
    second = read_back(out)[1]
    assert second["seq"] == 1
    assert second["cpu_percent"] == round((100 + 20 + 5) / TICK / 1.0 * 100, 2)
    assert second["memory_mb"] == round((256 + 512) * PAGE / 2**20, 2)
    # A loop held up for seconds takes one sample, then goes on from then: no burst.
    assert sampler.sample(20.0) == 1
    assert sampler.next_due() == 20.5
    assert sampler.sample(20.1) == 0
    assert warnings == []


def test_a_replica_with_only_zombies_left_gets_no_sample(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    write_stat(proc, 100, ppid=50, session=100, ticks=10, start=1, rss_pages=0, state="Z")
    out = tmp_path / "resources.jsonl"
    sampler = ResourceSampler(str(out), 1.0, lambda m: None, proc_root=str(proc))
    sampler.add("worker-0", 100, [], now=0.0)
    assert sampler.sample(1.0) == 0
    assert not out.exists()
    sampler.remove("worker-0")
    assert sampler.next_due() is None


def test_scan_of_the_real_proc_finds_this_process() -> None:
    me = [p for p in scan_processes() if p.pid == os.getpid()]
    assert len(me) == 1
    assert me[0].ppid == os.getppid() and me[0].session == os.getsid(0)
    assert me[0].rss_pages > 0


class FakeReader(GpuReader):
    """NVML stand-in for the in-process sampler: knows two GPUs (no GPU exists here)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[str]] = []

    def sample(self, uuids: list[str] | None = None) -> list[dict[str, Any]]:
        self.calls.append(list(uuids or []))
        known = {"GPU-a": 0, "GPU-b": 1}
        return [
            {"uuid": u, "index": known[u], "utilization_percent": 10.0 * known[u]}
            for u in uuids or []
            if u in known
        ]


def test_a_gpu_nvml_does_not_know_is_one_warning(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    write_stat(proc, 100, ppid=50, session=100, ticks=0, start=1, rss_pages=1)
    write_stat(proc, 200, ppid=50, session=200, ticks=0, start=1, rss_pages=1)
    reader = FakeReader()
    warnings: list[str] = []
    sampler = ResourceSampler(
        str(tmp_path / "r.jsonl"),
        1.0,
        warnings.append,
        proc_root=str(proc),
        reader_factory=lambda: reader,
    )
    sampler.add("worker-0", 100, ["GPU-b", "GPU-gone"], now=0.0)
    sampler.add("worker-1", 200, ["GPU-sim-1", "GPU-a"], now=0.0)
    for t in (1.0, 2.0, 3.0):
        assert sampler.sample(t) == 2
    assert reader.calls == [["GPU-b", "GPU-gone", "GPU-a"]] * 3
    assert warnings == [
        "GPU GPU-gone (GPU 1 of worker-0) is not visible to NVML: no metrics for it"
    ]
    rows = read_back(tmp_path / "r.jsonl")
    assert (
        rows[0]["gpu/0/utilization_percent"] == 10.0 and "gpu/1/utilization_percent" not in rows[0]
    )
    assert (
        rows[1]["gpu/1/utilization_percent"] == 0.0 and "gpu/0/utilization_percent" not in rows[1]
    )


def test_an_unwritable_file_is_one_warning_and_no_crash(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    write_stat(proc, 100, ppid=50, session=100, ticks=0, start=1, rss_pages=1)
    warnings: list[str] = []
    path = tmp_path / "missing-dir" / "resources.jsonl"
    sampler = ResourceSampler(str(path), 1.0, warnings.append, proc_root=str(proc))
    sampler.add("worker-0", 100, [], now=0.0)
    sampler.sample(1.0)
    sampler.sample(2.0)
    assert len(warnings) == 1
    assert warnings[0].startswith(f"cannot write resource samples to {path}: ")
    assert warnings[0].endswith("resource metrics of this run are incomplete")
    # Once the directory exists, samples are written again, numbered on.
    path.parent.mkdir()
    sampler.sample(3.0)
    assert [r["seq"] for r in read_back(path)] == [2]
