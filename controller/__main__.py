"""Run the controller API: ``python -m controller`` (what its systemd unit runs)."""

from __future__ import annotations

import logging
import sys

import uvicorn

from controller.api import create_app
from controller.celery_config import ConfigError
from controller.settings import ControllerSettings


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = ControllerSettings.from_env()
    except ConfigError as exc:
        print(f"controller: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
