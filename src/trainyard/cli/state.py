"""What every command shares: settings (read once), the server URL, consoles, the client."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from pydantic import ValidationError
from rich.console import Console

from trainyard.core.errors import InvalidInputError
from trainyard.core.settings import Settings, load_settings

if TYPE_CHECKING:
    from trainyard.client import TrainyardClient

__all__ = ["CliState", "default_server_url", "local_server_host"]


def local_server_host(settings: Settings) -> str:
    """The loopback address of the local server: ``settings.server.host`` when it is a
    loopback address, else 127.0.0.1 (a server bound to 0.0.0.0 answers there too, and a
    server started on the user's behalf must never listen beyond this machine)."""
    host = settings.server.host.strip("[]")
    if host == "localhost":
        return host
    try:
        return host if ipaddress.ip_address(host).is_loopback else "127.0.0.1"
    except ValueError:
        return "127.0.0.1"


def default_server_url(settings: Settings) -> str:
    """The URL used when none is configured: the local server on ``settings.server.port``."""
    host = local_server_host(settings)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.server.port}"


@dataclass
class CliState:
    """Per-invocation state, filled by the global options and handed to every command."""

    debug: bool = False
    server_override: str | None = None
    out: Console = field(default_factory=lambda: Console(highlight=False, soft_wrap=True))
    err: Console = field(
        default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True)
    )

    @cached_property
    def settings(self) -> Settings:
        try:
            return load_settings()
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise InvalidInputError(
                f"invalid trainyard settings in the environment (TRAINYARD_*): {problems}"
            ) from exc

    @property
    def server_url_is_explicit(self) -> bool:
        """True when --server or TRAINYARD_SERVER_URL names the server (no autostart then)."""
        return bool(self.server_override or self.settings.server_url)

    @property
    def server_url(self) -> str:
        url = self.server_override or self.settings.server_url or default_server_url(self.settings)
        return url.rstrip("/")

    def client(self, *, timeout: float = 30.0) -> TrainyardClient:
        from trainyard.client import TrainyardClient

        return TrainyardClient(self.server_url, timeout=timeout)
