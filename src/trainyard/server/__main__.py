"""``python -m trainyard.server [--host H] [--port P] [--insecure-no-auth]``."""

from __future__ import annotations

import argparse
import sys

from trainyard.core.errors import UserError
from trainyard.core.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainyard.server", description="Run the trainyard API server."
    )
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default 8080)")
    parser.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="allow a non-loopback --host although the API has no authentication",
    )
    args = parser.parse_args(argv)
    from trainyard.server.main import serve

    try:
        serve(load_settings(), args.host, args.port, args.insecure_no_auth)
    except UserError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
