"""The project's worker (``python -m worker``) with the benchmarks' probe installed."""

from __future__ import annotations

import os
import sys

# As worker.__main__ sets it, before Celery is imported.
os.environ.setdefault("REMAP_SIGTERM", "SIGQUIT")

from benchmarks import probes
from worker.__main__ import main

if __name__ == "__main__":
    probes.install(os.environ[probes.PROBE_ENV])
    sys.exit(main())
