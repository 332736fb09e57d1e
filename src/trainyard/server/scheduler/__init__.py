"""Scheduling: the launcher queue (``queue``) that starts queued runs in order."""
