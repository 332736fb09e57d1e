"""A fake trainyard server for the SDK tests: real HTTP on 127.0.0.1, the tracking contract.

It implements ``POST/GET /api/v1/runs/{id}/metrics``, ``GET …/metrics/{key}`` and
``POST/GET …/params`` like the real server (all-or-none batches, dedupe by ``batch_id``, 404
for an unknown run, 409 once the run has finished, 400 for a bad key or value), keeps every
request it saw, and can misbehave on demand: go down and come back on the same port, apply a
batch and then drop the connection before replying, refuse every batch, or hold requests.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from trainyard.core.errors import InvalidInputError
from trainyard.core.metrics import MAX_BATCH_POINTS, check_key, check_value, param_text
from trainyard.sdk.tracker import Tracker

RUN_ID = 7


@dataclass
class Seen:
    """One request the server received, and what it did with it."""

    method: str
    path: str
    batch_id: str | None = None
    points: int = 0
    outcome: str = ""  # "stored", "duplicate", "dropped-reply", an error code…


@dataclass
class FakeServer:
    port: int = 0
    runs: dict[int, str] = field(default_factory=lambda: {RUN_ID: "running"})
    points: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    params: dict[int, dict[str, str]] = field(default_factory=dict)
    batch_ids: set[str] = field(default_factory=set)
    seen: list[Seen] = field(default_factory=list)
    drop_replies: int = 0  # apply this many metric batches, then close without replying
    refuse: tuple[int, str, str] | None = None  # (status, code, message) for metric posts
    hold: threading.Event | None = None  # requests wait for it to be set
    lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -------------------------------------------------------------- lifecycle

    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"fake": self})
        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        httpd.daemon_threads = True
        self.port = httpd.server_address[1]
        self._httpd = httpd
        threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def stop(self) -> None:
        """Nothing listens any more: connections are refused."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    # -------------------------------------------------------------- reading what arrived

    def stored(self, run_id: int = RUN_ID) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.points.get(run_id, []))

    def metric_posts(self) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.method == "POST" and s.path.endswith("/metrics")]

    def wait_for(self, count: int, timeout: float = 10.0, run_id: int = RUN_ID) -> None:
        deadline = time.monotonic() + timeout
        while len(self.stored(run_id)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.stored(run_id))} points arrived, not {count}")
            time.sleep(0.01)

    # -------------------------------------------------------------- the contract

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Any:
        """(status, json) for a request; raises _DropReply to close without replying."""
        parts = path.removeprefix("/api/v1/").split("/", 3)
        if len(parts) < 3 or parts[0] != "runs" or parts[2] not in ("metrics", "params"):
            return 404, _error("not_found", f"no route {path}")
        run_id = int(parts[1])
        seen = Seen(method, path)
        with self.lock:
            self.seen.append(seen)
            if run_id not in self.runs:
                seen.outcome = "not_found"
                return 404, _error("not_found", f"run {run_id} not found")
            if method == "GET":
                return self._get(run_id, parts, query)
            if self.runs[run_id] != "running":
                seen.outcome = "conflict"
                return 409, _error(
                    "conflict", f"run {run_id} is {self.runs[run_id]}: it accepts no more data"
                )
            if parts[2] == "params":
                return self._params(run_id, body)
            return self._metrics(run_id, body, seen)

    def _metrics(self, run_id: int, body: dict[str, Any], seen: Seen) -> tuple[int, Any]:
        points = body["points"]
        seen.batch_id = body.get("batch_id")
        seen.points = len(points)
        if self.refuse is not None:
            status, code, message = self.refuse
            seen.outcome = code
            return status, _error(code, message)
        if len(points) > MAX_BATCH_POINTS:
            seen.outcome = "invalid_input"
            return 400, _error("invalid_input", f"{len(points)} points in one batch")
        try:
            for p in points:
                check_value(check_key(p["key"]), p["value"], p["step"])
        except InvalidInputError as exc:
            seen.outcome = "invalid_input"
            return 400, _error("invalid_input", exc.message)
        if seen.batch_id is not None and seen.batch_id in self.batch_ids:
            seen.outcome = "duplicate"
            return 200, {"accepted": 0, "duplicate": True}
        if seen.batch_id is not None:
            self.batch_ids.add(seen.batch_id)
        series = self.points.setdefault(run_id, [])
        for p in points:
            step = p["step"]
            if step is None:  # the series' next step
                step = 1 + max((q["step"] for q in series if q["key"] == p["key"]), default=-1)
            series.append({**p, "step": step, "time": p["time"] or time.time()})
        if self.drop_replies > 0:
            self.drop_replies -= 1
            seen.outcome = "dropped-reply"
            raise _DropReply
        seen.outcome = "stored"
        return 200, {"accepted": len(points), "duplicate": False}

    def _params(self, run_id: int, body: dict[str, Any]) -> tuple[int, Any]:
        try:
            texts = {check_key(k, "param"): param_text(k, v) for k, v in body["params"].items()}
        except InvalidInputError as exc:
            return 400, _error("invalid_input", exc.message)
        logged = self.params.setdefault(run_id, {})
        for key, text in texts.items():
            if key in logged and logged[key] != text:
                return 409, _error(
                    "conflict", f"param {key!r} of run {run_id} is already {logged[key]!r}"
                )
        logged.update(texts)
        return 200, {"params": texts}

    def _get(self, run_id: int, parts: list[str], query: dict[str, list[str]]) -> tuple[int, Any]:
        if parts[2] == "params":
            return 200, {"params": dict(self.params.get(run_id, {}))}
        by_key: dict[str, list[dict[str, Any]]] = {}
        for p in self.points.get(run_id, []):
            by_key.setdefault(p["key"], []).append(p)
        if len(parts) == 4:
            key = unquote(parts[3])
            if key not in by_key:
                return 404, _error("not_found", f"run {run_id} has no metric {key!r}")
            series = sorted(by_key[key], key=lambda p: p["step"])
            rows = [[p["step"], p["time"], p["value"]] for p in series]
            limit = int(query.get("max_points", ["0"])[0])
            sampled = bool(limit) and len(rows) > limit
            return 200, {
                "key": key,
                "points": rows[:limit] if sampled else rows,
                "total": len(rows),
                "downsampled": sampled,
            }
        items = []
        for key, series in sorted(by_key.items()):
            last = max(series, key=lambda p: p["step"])
            values = [p["value"] for p in series]
            items.append(
                {
                    "key": key,
                    "count": len(series),
                    "last_value": last["value"],
                    "last_step": last["step"],
                    "last_time": last["time"],
                    "min_value": min(values),
                    "max_value": max(values),
                    "first_time": min(p["time"] for p in series),
                }
            )
        return 200, {"items": items}


class _DropReply(Exception):
    pass


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": {}}}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.fake.hold is not None:
            self.fake.hold.wait(30)
        url = urlsplit(self.path)
        try:
            status, data = self.fake.handle(
                method, url.path, parse_qs(url.query), json.loads(raw) if raw else None
            )
        except _DropReply:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")


MakeTracker = Callable[..., Tracker]
