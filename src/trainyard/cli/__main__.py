"""``python -m trainyard.cli``: the same as the ``trainyard`` command."""

from trainyard.cli.main import main

main()
