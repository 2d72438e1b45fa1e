"""`treecredit-server` / `python -m treecredit_server`: run the service."""

from __future__ import annotations

import asyncio

from treecredit_server import app, config, log


def main(argv: list[str] | None = None) -> None:
    settings = config.parse(argv)
    log.configure(settings.log_level)
    asyncio.run(app.serve(settings))


if __name__ == "__main__":
    main()
