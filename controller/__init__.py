"""The controller side of research-orchestration: tier model, node profiles,
worker registry, dispatcher, API, Celery configuration and the submit client."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("research-orchestration")
except PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0+unknown"
