"""HTTP routes under ``/api/v1``, one module per resource: parse, call a service, respond."""
