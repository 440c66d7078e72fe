"""Run the controller API: ``python -m controller`` (what its systemd unit runs).

``python -m controller --check`` reads the settings, tokens file, worker
secret and catalog as the service would, says what is wrong, and exits.

With ``RESEARCH_API_WORKERS`` above 1, uvicorn runs that many API processes
on the one port, each building its app with ``app_from_env``. Every worker
keeps a connection open to heartbeat on, so the limit on open files is raised
to its hard limit first.
"""

from __future__ import annotations

import logging
import resource
import sys

import uvicorn
from fastapi import FastAPI

from controller.api import create_app
from controller.auth import TokenBook, TokenError
from controller.catalog import CatalogError, load_catalog
from controller.celery_config import ConfigError
from controller.settings import ControllerSettings

_LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
logger = logging.getLogger(__name__)


def app_from_env() -> FastAPI:
    """Return the API app from the environment (each API process calls it)."""
    logging.basicConfig(level=logging.INFO, format=_LOG_FORMAT)
    return create_app(ControllerSettings.from_env())


def raise_open_files_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (systemd
    starts services at 1024); return the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def check(settings: ControllerSettings) -> None:
    """Read every file the service reads; raise the first error found."""
    TokenBook.load(settings.tokens_file, settings.worker_secret_file, None)
    load_catalog(settings.catalog_file)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format=_LOG_FORMAT)
    try:
        settings = ControllerSettings.from_env()
        if "--check" in args:
            check(settings)
            print("controller: configuration is valid")
            return 0
    except (ConfigError, TokenError, CatalogError, OSError) as exc:
        print(f"controller: {exc}", file=sys.stderr)
        return 2
    logger.info("controller: up to %d open files (connections)", raise_open_files_limit())
    # Several processes need the app by name, each building its own.
    several = settings.workers > 1
    app: FastAPI | str = "controller.__main__:app_from_env" if several else create_app(settings)
    uvicorn.run(
        app,
        factory=several,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,
        timeout_keep_alive=settings.keep_alive_s,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
