"""The persistence layer: the only package that imports SQLAlchemy.

Modules: ``engine`` (engines, read/write transactions), ``tables`` (rows), one module of
queries per resource (``projects``, ``tasks``, ``runs``, ``events``, ``snapshots``) and
``migrations`` (Alembic, run at start). Query functions take a session opened by a service
with :meth:`Database.read` or :meth:`Database.write`; ``get_*`` return None when nothing
matches, and ``to_*`` turn rows into :mod:`trainyard.core.models` objects.
"""

from trainyard.server.store.engine import Database, Session

__all__ = ["Database", "Session"]
