"""Resource charts in a real browser: the run view's System section (per replica, with the
Window and Aggregation controls re-reading the data, "no GPU", simulated GPUs, GPUs without
samples, older keys, live updates, a finished run's window) and the Operator's node page
(CPU, memory and per-GPU charts, "no GPU", simulated GPUs, an unknown node).

No GPU exists on this machine. GPU charts are fed the way a GPU machine would feed them:
run samples are posted to the run's metrics under the supervisor's ``system/<replica>/gpu/``
keys, and a second node with a real-looking GPU is registered and sampled through the store
(as another server would do it on its own machine). "No GPU samples yet" needs a replica
placed on a real GPU; the run page's layout is altered in flight to say its GPU is real.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from browser_support import shoot, submit, wait_for, wait_status
from playwright.sync_api import expect

from trainyard.executors.nvml import DiscoveredGpu
from trainyard.server.services.scheduling import register_node
from trainyard.server.store import Database
from trainyard.server.store import node_metrics as node_store
from trainyard.server.store.tables import NodeRow

V100 = "Tesla-V100-SXM3-32GB"
HISTORY = 7200  # seconds of samples posted before the test looks
EVERY = 10  # seconds between two posted samples
GPU_NODE = "gpu-node-1"
GPU_UUID = "GPU-8f3c2a71-5b0e-4f4e-9d2a-0c1d2e3f4a5b"
XSS_PRODUCT = "<img src=x onerror='alert(1)'>"


def _manifest() -> str:
    """Two workers asking for a GPU each and a parameter server without one."""
    sleep = json.dumps("sleep 120")
    return (
        "apiVersion: trainyard/v1\nname: sys\nresources:\n"
        f"  - name: worker\n    replicas: 2\n    command: {sleep}\n"
        "    resources:\n      requests: {cpu: 100m, memory: 64Mi, gpu: 1}\n"
        f"  - name: ps\n    replicas: 1\n    command: {sleep}\n"
        "    resources:\n      requests: {cpu: 100m, memory: 64Mi}\n"
    )


def _history(replica: str, now: float, gpu: bool = False) -> list[dict[str, Any]]:
    """HISTORY seconds of a replica's samples, one every EVERY seconds, ending now. Steps are
    negative so they never meet the supervisor's own samples (steps 0, 1, 2, ...)."""
    n = HISTORY // EVERY
    points: list[dict[str, Any]] = []
    for i in range(n):
        t = now - HISTORY + i * EVERY + 0.5
        step = i - n

        def add(name: str, value: float, t: float = t, step: int = step) -> None:
            points.append(
                {"key": f"system/{replica}/{name}", "value": value, "step": step, "time": t}
            )

        add("cpu_percent", 60 + 40 * math.sin(i / 40))
        add("memory_mb", 900 + 300 * math.sin(i / 90) + i * 0.5)
        if gpu:  # no power_w: this GPU does not report it
            add("gpu/0/utilization_percent", 70 + 25 * math.sin(i / 25))
            add("gpu/0/memory_mb", 20_000 + 4_000 * math.sin(i / 60))
            add("gpu/0/temperature_c", 55 + 15 * math.sin(i / 50))
    return points


def _post(api: httpx.Client, run_id: int, points: list[dict[str, Any]]) -> None:
    for start in range(0, len(points), 5_000):
        response = api.post(
            f"/runs/{run_id}/metrics", json={"points": points[start : start + 5_000]}
        )
        assert response.status_code == 200, response.text


def _node(api: httpx.Client) -> str:
    name: str = api.get("/nodes").json()["items"][0]["name"]
    return name


class Requests:
    """The metric reads the page makes, with their query parameters."""

    def __init__(self, page: Any, part: str) -> None:
        self.seen: list[dict[str, str]] = []
        self.part = part
        page.on("request", self._on)

    def _on(self, request: Any) -> None:
        url = urlsplit(request.url)
        if self.part in url.path:
            self.seen.append({k: v[0] for k, v in parse_qs(url.query).items()})

    def last(self) -> dict[str, str]:
        assert self.seen, f"no request for {self.part}"
        return self.seen[-1]

    def clear(self) -> None:
        self.seen.clear()


def _points(chart: Any) -> int:
    return int(chart.get_attribute("data-points"))


def _between(chart: Any, low: int, high: int) -> int:
    """Waits until the chart draws between low and high points; the number drawn."""

    def probe() -> int | None:
        n = chart.get_attribute("data-points")
        return int(n) if n is not None and low <= int(n) <= high else None

    n: int = wait_for(f"a chart with {low}..{high} points", probe, timeout=15)
    return n


@pytest.fixture
def gpu_run(api: httpx.Client) -> Iterator[dict[str, Any]]:
    """A running 3-replica run on 2 simulated GPUs, with 2 hours of posted samples."""
    assert (
        api.put(f"/nodes/{_node(api)}/simulated-gpus", json={"count": 2, "type": V100}).status_code
        == 200
    )
    run = submit(api, _manifest())
    try:
        run = wait_status(api, run["id"], {"running"})
        now = time.time()
        points = (
            _history("worker-0", now) + _history("worker-1", now, gpu=True) + _history("ps-0", now)
        )
        # An older key without a replica part, as runs logged before per-replica keys.
        points += [
            {
                "key": "system/cpu_percent",
                "value": 40 + i % 7,
                "step": i,
                "time": now - 600 + i * 10,
            }
            for i in range(60)
        ]
        _post(api, run["id"], points)
        yield run
    finally:
        api.post(f"/runs/{run['id']}/stop")
        wait_status(api, run["id"], {"stopped", "complete", "error"})


def _open_system(page: Any, url: str) -> Any:
    page.goto(url)
    page.get_by_role("tab", name="Metrics").click()
    system = page.locator("#metrics-system")
    expect(system).to_be_visible()
    return system


def test_system_section_charts_each_replica_over_a_window(
    page: Any, live_server: Any, api: httpx.Client, gpu_run: dict[str, Any]
) -> None:
    run_id = gpu_run["id"]
    reads = Requests(page, f"/api/v1/runs/{run_id}/metrics/system/worker-1/cpu_percent")
    system = _open_system(page, f"{live_server.url}/runs/{run_id}")
    # No user metric: the SDK hint stays; the System section is apart from it.
    expect(page.locator("#metrics-empty")).to_be_visible()
    groups = system.locator(".sysreplica")
    expect(groups).to_have_count(4)
    expect(system.locator("h3.sysname")).to_have_text(
        [
            re.compile(r"^worker-0 on .+ · 1 GPU$"),
            re.compile(r"^worker-1 on .+ · 1 GPU$"),
            re.compile(r"^ps-0 on .+ · no GPU$"),
            re.compile(r"^Other system metrics"),
        ]
    )
    w0, w1, ps, other = (
        system.locator(f'.sysreplica[data-replica="{n}"]')
        for n in ("worker-0", "worker-1", "ps-0", "")
    )

    # worker-0: on a simulated GPU, CPU and memory charts and one note, no GPU charts.
    expect(w0.locator(".tchart h3")).to_have_text(["CPU usage (%)", "Memory usage (MB)"])
    expect(w0.locator(".tnote")).to_have_count(1)
    expect(w0.locator(".tnote")).to_have_attribute("data-state", "simulated")
    expect(w0.locator(".tnote h3")).to_have_text("simulated GPU — nothing to measure")
    expect(w0.locator(".tnote")).to_contain_text("trainyard node simulate-gpus")

    # worker-1: its GPU's charts, named as the placement names the GPU.
    expect(w1.locator(".tchart h3")).to_have_text(
        [
            "CPU usage (%)",
            "Memory usage (MB)",
            "GPU usage (%)",
            "GPU memory (MB)",
            "GPU power draw (W)",
            "GPU temperature (°C)",
        ]
    )
    heading = w1.locator("h4.tgpu")
    expect(heading).to_have_count(1)
    expect(heading).to_contain_text("GPU 0")
    expect(heading.locator(".gpuproduct")).to_have_text(V100)
    expect(heading.locator(".tuuid")).to_have_text(re.compile(r"^GPU-sim-"))
    power = w1.locator('.tchart[data-key="system/worker-1/gpu/0/power_w"]')
    expect(power).to_have_attribute("data-state", "unsupported")
    expect(power).to_contain_text("Not reported by this GPU")
    temperature = w1.locator('.tchart[data-key="system/worker-1/gpu/0/temperature_c"]')
    expect(temperature.locator("canvas")).to_have_count(1)
    expect(temperature.locator(".stats")).to_have_text(re.compile(r"^last [\d.,]+ °C$"))
    expect(temperature.locator(".note")).to_contain_text(
        re.compile(r"^max [\d.,]+ °C · \d+ points")
    )

    # ps-0: no GPU, so one muted card instead of four empty charts.
    expect(ps.locator(".tchart")).to_have_count(2)
    expect(ps.locator(".tnote")).to_have_attribute("data-state", "no-gpu")
    expect(ps.locator(".tnote h3")).to_have_text("no GPU")
    expect(ps.locator(".tnote")).to_contain_text("resources: {requests: {gpu: 1}}")

    # The older key: still charted, under its own heading, titled by the key.
    expect(other.locator(".tchart h3")).to_have_text(["system/cpu_percent"])
    expect(other.locator("canvas")).to_have_count(1)

    # Whole run (2 h of samples): Auto takes 30 s buckets, about 240 points.
    cpu = w1.locator('.tchart[data-key="system/worker-1/cpu_percent"]')
    expect(cpu).to_have_attribute("data-interval", "30")
    _between(cpu, 236, 244)
    params = reads.last()
    assert params["interval"] == "30"
    assert float(params["max_time"]) - float(params["min_time"]) == pytest.approx(HISTORY, abs=15)
    expect(cpu.locator(".note")).to_contain_text("mean per 30 s")
    # x is wall time: the axis spans the window, in UTC.
    x_range = cpu.evaluate("c => [c.uplot.scales.x.min, c.uplot.scales.x.max]")
    assert x_range[1] - x_range[0] == pytest.approx(HISTORY, abs=15)
    expect(system.locator(".sysbar")).to_contain_text("Times in UTC")
    expect(system.locator(".syslive")).to_contain_text("live")
    shoot(page, "run-system")
    w1.scroll_into_view_if_needed()
    shoot(page, "run-system-gpu")
    page.evaluate("() => window.scrollTo(0, 0)")

    # Last 5 min: read again with that window; it holds about 30 samples, so Auto shows
    # them as they are (the supervisor's own samples of the last seconds may add a few).
    reads.clear()
    page.locator("#system-window").select_option(label="Last 5 min")
    expect(cpu).to_have_attribute("data-interval", "raw")
    _between(cpu, 29, 40)
    params = reads.last()
    assert "interval" not in params
    assert float(params["max_time"]) - float(params["min_time"]) == pytest.approx(300, abs=0.01)
    assert float(params["max_time"]) == pytest.approx(time.time(), abs=20)
    expect(cpu.locator(".note")).to_contain_text("raw samples")

    # Aggregation 1 min over the same window: 5 or 6 points.
    reads.clear()
    page.locator("#system-interval").select_option(label="1 min")
    expect(cpu).to_have_attribute("data-interval", "60")
    _between(cpu, 5, 6)
    assert reads.last()["interval"] == "60"
    expect(cpu.locator(".note")).to_contain_text("mean per 1 min")

    # Back to the whole run with 1 min buckets: about 120 points.
    page.locator("#system-window").select_option(label="Whole run")
    _between(cpu, 118, 123)

    # Live: a new sample shows without a reload.
    _post(
        api,
        run_id,
        [
            {
                "key": "system/worker-1/cpu_percent",
                "value": 4000.0,
                "step": 10**6,
                "time": time.time(),
            }
        ],
    )
    wait_for("the new sample", lambda: float(cpu.get_attribute("data-last")) > 400, timeout=15)


def test_system_section_says_when_a_real_gpu_has_no_samples(
    page: Any, live_server: Any, api: httpx.Client, gpu_run: dict[str, Any]
) -> None:
    """worker-0's GPU is simulated here; the page is told it is real (as on a GPU machine
    whose samples have not arrived), so it must say so rather than "no GPU"."""
    url = f"{live_server.url}/runs/{gpu_run['id']}"

    def real_gpus(route: Any) -> None:
        response = route.fetch()
        html = response.text().replace('"simulated": true', '"simulated": false')
        route.fulfill(response=response, body=html)

    page.route(url, real_gpus)
    system = _open_system(page, url)
    w0 = system.locator('.sysreplica[data-replica="worker-0"]')
    expect(w0.locator(".tnote")).to_have_attribute("data-state", "no-gpu-samples")
    expect(w0.locator(".tnote h3")).to_have_text("no GPU samples yet")
    expect(w0.locator(".tnote")).to_contain_text("NVML")
    expect(w0.locator(".tchart")).to_have_count(2)


def test_a_finished_runs_window_ends_at_its_end(
    page: Any, live_server: Any, api: httpx.Client, gpu_run: dict[str, Any]
) -> None:
    run_id = gpu_run["id"]
    assert api.post(f"/runs/{run_id}/stop").status_code == 200
    run = wait_status(api, run_id, {"stopped", "complete", "error"})
    finished = time.time()
    time.sleep(2)
    system = _open_system(page, f"{live_server.url}/runs/{run_id}")
    cpu = system.locator('.tchart[data-key="system/ps-0/cpu_percent"]')
    expect(cpu).to_have_attribute("data-state", "data")
    page.locator("#system-window").select_option(label="Last 15 min")

    def span() -> float:
        return float(cpu.get_attribute("data-until")) - float(cpu.get_attribute("data-since"))

    wait_for("the 15 min window", lambda: span() == pytest.approx(900, abs=0.01))
    # It ends at the run's end (its recorded end, or a later last sample), not now.
    until = float(cpu.get_attribute("data-until"))
    ended = datetime.fromisoformat(run["finished_at"]).replace(tzinfo=UTC).timestamp()
    assert ended - 0.01 <= until <= finished + 1, (until, ended, finished)
    expect(system.locator(".syslive")).to_have_text("")


@pytest.fixture
def node_server(server_factory: Any) -> Iterator[Any]:
    """A server sampling its node every half second."""
    server = server_factory.start(extra_env={"TRAINYARD_METRICS__NODE_INTERVAL": "0.5"})
    try:
        yield server
    finally:
        server.close()
        server_factory.servers.remove(server)


def _gpu_node(server: Any) -> None:
    """A second node with one real GPU, registered and sampled through the store as its own
    server would do it: two hours of samples every EVERY seconds."""
    db = Database(server.settings().database_url)
    try:
        gpu = DiscoveredGpu(
            index=0, uuid=GPU_UUID, product="NVIDIA-A100-SXM4-40GB", memory_bytes=40 * 2**30
        )
        register_node(db, GPU_NODE, cpu_millis=32_000, memory_bytes=256 * 2**30, gpus=[gpu])
        now = time.time()
        with db.write() as session:
            node_id = session.query(NodeRow.id).filter(NodeRow.name == GPU_NODE).scalar()
            for i in range(HISTORY // EVERY):
                t = now - HISTORY + i * EVERY + 1
                values = [
                    ("cpu_percent", 35 + 30 * math.sin(i / 30)),
                    ("memory_mb", 90_000 + 20_000 * math.sin(i / 80)),
                    ("gpu/0/utilization_percent", 80 + 18 * math.sin(i / 20)),
                    ("gpu/0/memory_mb", 30_000 + 6_000 * math.sin(i / 70)),
                    ("gpu/0/power_w", 250 + 80 * math.sin(i / 20)),
                    ("gpu/0/temperature_c", 62 + 10 * math.sin(i / 45)),
                ]
                node_store.insert_samples(session, node_id, t, values)
    finally:
        db.dispose()


def test_node_page_charts_cpu_memory_and_each_gpu(page: Any, node_server: Any) -> None:
    base = node_server.url
    with httpx.Client(base_url=f"{base}/api/v1", timeout=30.0) as api:
        local = _node(api)
    reads = Requests(page, "/metrics")

    # From the Operator area: the node card links to its page.
    page.goto(f"{base}/operator")
    card = page.locator(f'article.node[data-node="{local}"]')
    card.get_by_role("link", name="Resource charts →").click()
    expect(page).to_have_url(f"{base}/operator/nodes/{local}")
    expect(page.get_by_role("link", name="Operator", exact=True).first).to_have_attribute(
        "aria-current", "page"
    )
    expect(page.locator("h1")).to_contain_text(local)
    box = page.locator("#node-metrics")
    cpu = box.locator('.tchart[data-key="cpu_percent"]')
    memory = box.locator('.tchart[data-key="memory_mb"]')
    # The server samples its own node: real CPU and memory arrive within seconds.
    expect(cpu).to_have_attribute("data-state", "data", timeout=15_000)
    expect(memory).to_have_attribute("data-state", "data", timeout=15_000)
    expect(cpu.locator("canvas")).to_have_count(1)
    assert 0 <= float(cpu.get_attribute("data-last")) <= 100
    assert float(memory.get_attribute("data-last")) > 10
    # This machine has no GPU: one "no GPU" card, no GPU chart.
    note = box.locator(".tnote")
    expect(note).to_have_count(1)
    expect(note).to_have_attribute("data-state", "no-gpu")
    expect(note.locator("h3")).to_have_text("no GPU")
    expect(box.locator(".tchart")).to_have_count(2)
    params = reads.last()
    assert params == {"window": "3600", "interval": "auto"}
    expect(box.locator(".syslive")).to_contain_text("live")
    shoot(page, "node-no-gpu")

    # Simulated GPUs: named and marked, with nothing to chart.
    with httpx.Client(base_url=f"{base}/api/v1", timeout=30.0) as api:
        made = api.put(f"/nodes/{local}/simulated-gpus", json={"count": 2, "type": V100})
        assert made.status_code == 200, made.text
    # The card follows without a reload (polled every 5 s).
    expect(page.locator("#node-card ul.gpus > li")).to_have_count(2, timeout=12_000)
    expect(page.locator("#node-card .nodegpus")).to_contain_text("2 of 2 GPUs free")
    page.reload()
    expect(box.locator("h4.tgpu")).to_have_count(2)
    expect(box.locator("h4.tgpu .gpuproduct")).to_have_text([V100, V100])
    expect(box.locator("h4.tgpu .badge")).to_have_text(["simulated", "simulated"])
    expect(box.locator('.tnote[data-state="simulated"] h3')).to_have_text(
        ["simulated GPU — nothing to measure"] * 2
    )
    expect(box.locator(".tchart")).to_have_count(2)
    shoot(page, "node-simulated")

    # A node with a real GPU and two hours of samples: four charts for it.
    _gpu_node(node_server)
    reads.clear()
    page.goto(f"{base}/operator/nodes/{GPU_NODE}")
    heading = box.locator("h4.tgpu")
    expect(heading).to_have_count(1)
    expect(heading.locator(".gpuproduct")).to_have_text("NVIDIA-A100-SXM4-40GB")
    expect(heading.locator(".tuuid")).to_have_text(GPU_UUID)
    expect(box.locator(".tchart h3")).to_have_text(
        [
            "CPU usage (%)",
            "Memory usage (MB)",
            "GPU usage (%)",
            "GPU memory (MB)",
            "GPU power draw (W)",
            "GPU temperature (°C)",
        ]
    )
    expect(box.locator(".tnote")).to_have_count(0)
    power = box.locator('.tchart[data-key="gpu/0/power_w"]')
    expect(power.locator("canvas")).to_have_count(1)
    # Last 1 h (the default) at 10 s: about 360 points.
    expect(box).to_have_attribute("data-interval", "10")
    _between(power, 355, 361)
    expect(power.locator(".stats")).to_have_text(re.compile(r"^last [\d.,]+ W$"))
    expect(power.locator(".note")).to_contain_text(re.compile(r"^max [\d.,]+ W · \d+ points"))
    # The GPU memory chart tops at the GPU's memory (40 GiB = 40,960 MiB).
    top = box.locator('.tchart[data-key="gpu/0/memory_mb"]').evaluate("c => c.uplot.scales.y.max")
    assert top >= 40_960
    shoot(page, "node-gpu")

    # Window and aggregation read again with their parameters.
    reads.clear()
    box.locator("#node-window").select_option(label="Last 5 min")
    expect(box).to_have_attribute("data-window", "300")
    assert reads.last() == {"window": "300", "interval": "auto"}
    _between(power, 29, 31)
    reads.clear()
    box.locator("#node-window").select_option(label="Last 1 day")
    box.locator("#node-interval").select_option(label="5 min")
    expect(box).to_have_attribute("data-interval", "300")
    assert reads.last() == {"window": "86400", "interval": "300"}
    _between(power, 24, 25)  # two hours of samples in 5 min buckets
    expect(power.locator(".note")).to_contain_text("mean per 5 min")

    # Live: a new sample appears without a reload.
    box.locator("#node-window").select_option(label="Last 5 min")
    box.locator("#node-interval").select_option(label="Auto")
    db = Database(node_server.settings().database_url)
    try:
        with db.write() as session:
            node_id = session.query(NodeRow.id).filter(NodeRow.name == GPU_NODE).scalar()
            node_store.insert_samples(session, node_id, time.time(), [("gpu/0/power_w", 5000.0)])
    finally:
        db.dispose()
    wait_for("the new sample", lambda: float(power.get_attribute("data-last")) > 1000, timeout=15)

    # The server dies while the page is open: the page says so and keeps its charts; once
    # the server is back, the next refresh clears the message.
    state = page.locator("#node-metrics-state")
    node_server.kill()
    expect(state).to_contain_text(f"Could not read the metrics of {GPU_NODE}", timeout=15_000)
    expect(state).to_contain_text("retried every 5 s")
    expect(power).to_have_attribute("data-state", "data")
    shoot(page, "node-server-down")
    node_server.start()
    expect(state).to_have_text("", timeout=15_000)
    expect(power.locator("canvas")).to_have_count(1)


def test_unknown_node_is_a_404_with_a_way_back(page: Any, live_server: Any) -> None:
    response = page.goto(f"{live_server.url}/operator/nodes/no-such-node")
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    expect(page.locator("main")).to_contain_text("node 'no-such-node' not found (known nodes: ")
    shoot(page, "node-not-found")
    page.get_by_role("link", name="Back to the Operator area").click()
    expect(page).to_have_url(f"{live_server.url}/operator")
    # Markup in the name is shown as text.
    response = page.goto(f"{live_server.url}/operator/nodes/%3Cimg%20src=x%20onerror=alert(1)%3E")
    assert response.status == 404
    expect(page.locator("main")).to_contain_text("node '<img src=x onerror=alert(1)>' not found")
    assert page.locator("main img").count() == 0


@pytest.fixture
def fast_server(server_factory: Any) -> Iterator[Any]:
    """A server whose supervisors sample their replicas every half second."""
    server = server_factory.start(extra_env={"TRAINYARD_METRICS__RESOURCE_INTERVAL": "0.5"})
    try:
        yield server
    finally:
        server.close()
        server_factory.servers.remove(server)


def test_a_running_replicas_own_samples_appear_live(page: Any, fast_server: Any) -> None:
    """End to end: the supervisor samples a real replica that burns CPU and holds memory;
    its charts fill in on the open page without a reload, and it has no GPU card."""
    burn = (
        "import time; x = bytearray(200 * 2**20); t = time.time(); "
        "any(iter(lambda: time.time() - t > 60, True))"
    )
    command = f"{sys.executable} -c {shlex.quote(burn)}"
    text = (
        "apiVersion: trainyard/v1\nname: burn\nresources:\n  - name: worker\n    replicas: 1\n"
        f"    command: {json.dumps(command)}\n"
        "    resources:\n      requests: {cpu: 100m, memory: 64Mi}\n"
    )
    with httpx.Client(base_url=f"{fast_server.url}/api/v1", timeout=30.0) as api:
        run = submit(api, text)
        try:
            wait_status(api, run["id"], {"running"})
            system = _open_system(page, f"{fast_server.url}/runs/{run['id']}")
            w0 = system.locator('.sysreplica[data-replica="worker-0"]')
            cpu = w0.locator('.tchart[data-key="system/worker-0/cpu_percent"]')
            memory = w0.locator('.tchart[data-key="system/worker-0/memory_mb"]')
            expect(cpu).to_have_attribute("data-state", "data", timeout=20_000)
            expect(w0.locator(".tnote")).to_have_attribute("data-state", "no-gpu")
            # The replica busy-loops (~100 % of a core) and holds 200 MiB.
            wait_for(
                "the busy replica's CPU",
                lambda: float(cpu.get_attribute("data-last") or 0) > 50,
                timeout=20,
            )
            wait_for(
                "its memory",
                lambda: float(memory.get_attribute("data-last") or 0) > 150,
                timeout=20,
            )
            shoot(page, "run-system-live")
        finally:
            api.post(f"/runs/{run['id']}/stop")
            wait_status(api, run["id"], {"stopped", "complete", "error"})


def test_a_run_opened_while_queued_names_its_gpus_once_placed(page: Any, fast_server: Any) -> None:
    """The page was rendered before the run had a placement: once it runs, the section
    learns its GPUs from the node list and says they are simulated."""
    gpu_sleep = _manifest().replace("replicas: 2", "replicas: 1").split("  - name: ps")[0]
    with httpx.Client(base_url=f"{fast_server.url}/api/v1", timeout=30.0) as api:
        assert (
            api.put(
                f"/nodes/{_node(api)}/simulated-gpus", json={"count": 1, "type": V100}
            ).status_code
            == 200
        )
        holder = submit(api, gpu_sleep)
        waiting = submit(api, gpu_sleep)
        try:
            wait_status(api, holder["id"], {"running"})
            wait_for("the second run to queue", lambda: api.get("/queue").json()["items"])
            system = page.locator("#metrics-system")
            page.goto(f"{fast_server.url}/runs/{waiting['id']}#metrics")
            expect(page.locator("#run-status")).to_contain_text("queued")
            expect(system).to_be_hidden()
            assert api.post(f"/runs/{holder['id']}/stop").status_code == 200
            w0 = system.locator('.sysreplica[data-replica="worker-0"]')
            expect(w0.locator(".tnote")).to_have_attribute(
                "data-state", "simulated", timeout=30_000
            )
            expect(w0.locator(".tnote")).to_contain_text(f"1 × {V100}")
            expect(w0.locator("h3.sysname")).to_contain_text("1 GPU")
            expect(w0.locator('.tchart[data-key="system/worker-0/cpu_percent"]')).to_have_attribute(
                "data-state", "data", timeout=20_000
            )
        finally:
            for run in (holder, waiting):
                api.post(f"/runs/{run['id']}/stop")
            for run in (holder, waiting):
                wait_status(api, run["id"], {"stopped", "complete", "error"})


def test_system_layout_names_each_replicas_gpus_in_device_order() -> None:
    """What the run page hands the System section (no browser needed): replicas in spec
    order, their GPUs in CUDA_VISIBLE_DEVICES order once placed, None before; a GPU no node
    reports keeps its UUID; and the data attribute is escaped JSON."""
    from trainyard.core.models import Placement, Run
    from trainyard.core.scheduling import Gpu
    from trainyard.core.status import RunStatus
    from trainyard.manifest import load_manifest
    from trainyard.server.web.pages import system_layout, templates

    spec = load_manifest(_manifest())
    start = datetime(2030, 1, 1, 12, 0, 0)
    run = Run(
        id=7,
        project="default",
        task="sys",
        build_id=1,
        status=RunStatus.RUNNING,
        spec=spec,
        created_at=start,
        updated_at=start,
        started_at=start,
    )
    unplaced = system_layout(run, {})
    assert [r["name"] for r in unplaced["replicas"]] == ["worker-0", "worker-1", "ps-0"]
    assert [r["requested"] for r in unplaced["replicas"]] == [1, 1, 0]
    assert all(r["gpus"] is None and r["node"] is None for r in unplaced["replicas"])
    assert unplaced["started"] == datetime(2030, 1, 1, 12, tzinfo=UTC).timestamp()
    assert unplaced["finished"] is None

    known = Gpu(
        uuid="GPU-b", index=3, product=XSS_PRODUCT, node="n1", pool="default", simulated=True
    )
    run.placements = [
        Placement(replica="worker-0", node="n1", gpus=["GPU-b", "GPU-gone"]),
        Placement(replica="ps-0", node="n1"),
    ]
    placed = system_layout(run, {"GPU-b": known})
    w0, w1, ps = placed["replicas"]
    assert w0["node"] == "n1"
    assert w0["gpus"] == [
        {"uuid": "GPU-b", "index": 3, "product": XSS_PRODUCT, "simulated": True, "node": "n1"},
        {"uuid": "GPU-gone", "index": None, "product": "", "simulated": False, "node": "n1"},
    ]
    assert w1["gpus"] is None
    assert ps["gpus"] == []

    html = templates.get_template("_run_metrics.html").render(run=run, system_layout=placed)
    attribute = html.split("data-layout='", 1)[1].split("'", 1)[0]
    assert json.loads(attribute) == placed
    assert "<img" not in attribute and "\\u003cimg" in attribute and "\\u0027" in attribute
