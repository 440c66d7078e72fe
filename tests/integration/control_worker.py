"""A worker with one protecting setting turned off: the control of a fault test.

    CONTROL_OFF=reject_on_worker_lost python -m tests.integration.control_worker

Same environment as ``python -m worker``. It shows that a fault test can see
the loss the setting prevents.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("REMAP_SIGTERM", "SIGQUIT")

from worker.app import make_worker_app, worker_argv
from worker.config import WorkerSettings

SETTINGS_OFF = {
    "reject_on_worker_lost": {"task_reject_on_worker_lost": False},
}


def main() -> int:
    settings = WorkerSettings.from_env()
    app = make_worker_app(settings)
    app.conf.update(SETTINGS_OFF[os.environ["CONTROL_OFF"]])
    app.worker_main(worker_argv(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
