"""Run the controller API: ``python -m controller`` (what its systemd unit runs).

``python -m controller --check`` reads the settings, tokens file, worker
secret and catalog as the service would, says what is wrong, and exits.
"""

from __future__ import annotations

import logging
import sys

import uvicorn

from controller.api import create_app
from controller.auth import TokenBook, TokenError
from controller.catalog import CatalogError, load_catalog
from controller.celery_config import ConfigError
from controller.settings import ControllerSettings


def check(settings: ControllerSettings) -> None:
    """Read every file the service reads; raise the first error found."""
    TokenBook.load(settings.tokens_file, settings.worker_secret_file, None)
    load_catalog(settings.catalog_file)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = ControllerSettings.from_env()
        if "--check" in args:
            check(settings)
            print("controller: configuration is valid")
            return 0
    except (ConfigError, TokenError, CatalogError, OSError) as exc:
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
