"""The typed HTTP client of the trainyard REST API, and code snapshots for runs.

Imports only :mod:`trainyard.core` (never the server), so training images and the CLI stay
light.
"""

from trainyard.client.api import TrainyardClient
from trainyard.client.errors import ServerUnreachableError
from trainyard.client.git import git_info
from trainyard.client.logs import LogEntry, LogPage, LogStreamItem, StatusChange, StreamEnd
from trainyard.client.refs import RunRef, parse_run_ref
from trainyard.client.runs import RunPage
from trainyard.client.snapshot import IGNORE_FILE, SnapshotArchive, format_size, make_snapshot

__all__ = [
    "IGNORE_FILE",
    "LogEntry",
    "LogPage",
    "LogStreamItem",
    "RunPage",
    "RunRef",
    "ServerUnreachableError",
    "SnapshotArchive",
    "StatusChange",
    "StreamEnd",
    "TrainyardClient",
    "format_size",
    "git_info",
    "make_snapshot",
    "parse_run_ref",
]
