"""Execute one run outside Celery: ``python -m worker.execute_payload SPEC.json``.

Reads a run spec (as the controller sends it) from a file, executes it on
this machine with telemetry, prints the result as JSON and exits 0 if the run
succeeded, 1 if it failed, 2 if the spec or the environment is unusable. A
scheduler that is not Celery (a Nomad dispatched job, a batch system) runs
runs this way. ``RESEARCH_MODELS_DIR`` and ``RESEARCH_NODE_ID`` (default: the
host name) say where the models are and which node this is.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

from worker.execution import execute_run


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m worker.execute_payload SPEC.json", file=sys.stderr)
        return 2
    try:
        spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
        result = execute_run(
            spec,
            models_dir=Path(
                os.environ.get("RESEARCH_MODELS_DIR", "/var/lib/research-orchestration/models")
            ),
            node_id=os.environ.get("RESEARCH_NODE_ID") or socket.gethostname(),
        )
    except (OSError, ValueError) as exc:
        print(f"execute_payload: {args[0]}: {exc}", file=sys.stderr)
        return 2
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0 if result["status"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
