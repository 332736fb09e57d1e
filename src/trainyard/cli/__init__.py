"""The ``trainyard`` command line (Typer + Rich). Imports the client and core, never the server
(``trainyard server`` imports it lazily)."""
