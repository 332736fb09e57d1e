"""Use cases of the server. They own their transactions, return core models and raise core
errors; :func:`trainyard.server.services.runs.transition` is the only way a run's status
changes. ``reconciler`` keeps the database in step with the executor."""
