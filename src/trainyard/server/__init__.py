"""The trainyard server: REST API, background services (launcher, reconciler) and the store.

Entry points: :func:`trainyard.server.main.serve` and ``python -m trainyard.server``; the app
factory is :func:`trainyard.server.app.create_app`. Kept import-free so that importing a
submodule stays cheap.
"""
