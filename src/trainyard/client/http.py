"""The HTTP transport shared by the resource APIs of the client: one httpx.Client, error mapping."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import httpx

from trainyard import __version__
from trainyard.client.errors import error_from_response, unreachable

__all__ = ["API_PREFIX", "QueryParams", "Transport"]

API_PREFIX = "/api/v1"

QueryValue = str | int | float | bool | None
QueryParams = Mapping[str, QueryValue | Sequence[QueryValue]]


class Transport:
    """Sends requests to ``base_url + /api/v1`` and turns failures into trainyard errors.

    Connection failures raise :class:`~trainyard.client.errors.ServerUnreachableError`; error
    replies raise the class named by their ``code``. Thread-safe (``httpx.Client`` is).
    """

    def __init__(self, base_url: str, *, timeout: float = 30.0, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"User-Agent": f"trainyard-client/{__version__}", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout
        # trust_env=False: proxies from the environment must not capture calls to a loopback
        # server, and settings are only read by trainyard.core.settings.
        self._http = httpx.Client(
            base_url=self.base_url + API_PREFIX, timeout=timeout, headers=headers, trust_env=False
        )

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: QueryParams | None = None,
        json: Any = None,
        content: bytes | Iterator[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send one request and return its decoded JSON body (None for an empty body)."""
        try:
            response = self._http.request(
                method,
                path,
                params=_clean_params(params),
                json=json,
                content=content,
                headers=headers,
                timeout=timeout if timeout is not None else self.timeout,
            )
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc
        if response.is_error:
            raise error_from_response(response)
        if not response.content:
            return None
        return response.json()

    def get(self, path: str, *, params: QueryParams | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, *, json: Any = None) -> Any:
        return self.request("POST", path, json=json)

    def put(self, path: str, *, json: Any = None) -> Any:
        return self.request("PUT", path, json=json)

    @contextmanager
    def stream(
        self, path: str, *, params: QueryParams | None = None, read_timeout: float | None = None
    ) -> Iterator[httpx.Response]:
        """Open a streaming GET; error replies raise before the body is handed out."""
        timeout = httpx.Timeout(self.timeout, read=read_timeout)
        try:
            with self._http.stream(
                "GET",
                path,
                params=_clean_params(params),
                headers={"Accept": "text/event-stream"},
                timeout=timeout,
            ) as response:
                if response.is_error:
                    response.read()
                    raise error_from_response(response)
                yield response
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc


def _clean_params(params: QueryParams | None) -> httpx.QueryParams | None:
    """Drop None values and spell booleans and lists the way the server's query parser reads."""
    if params is None:
        return None
    out: list[tuple[str, QueryValue]] = []
    for key, value in params.items():
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if item is None:
                continue
            if isinstance(item, bool):
                out.append((key, "true" if item else "false"))
            else:
                out.append((key, str(item)))
    return httpx.QueryParams(out)
