"""labctl: look at and steer the lab's inference cluster (operators).

  labctl nodes                      nodes, tier, state, run, heartbeat, models
  labctl queues                     queue depths and the oldest wait
  labctl drain NODE --reason TEXT   finish the current run, take no more
  labctl undrain NODE               take runs again
  labctl run ID                     a run's state and result
  labctl cancel ID                  cancel a queued or running run
  labctl revoke NODE                revoke a worker's API token

Every command takes --json. Configuration as for research-submit: LAB_API_URL
and LAB_TOKEN (an operator's token to drain), or $LAB_CONFIG.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from controller.submit import Client, ConfigMissing, SubmitError
from controller.submit_cli import describe_result

__all__ = ["main", "table"]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Return rows as an aligned plain-text table."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f}m" if seconds < 7200 else f"{seconds / 3600:.0f}h"


def show_nodes(nodes: list[dict[str, Any]]) -> str:
    rows = [
        (
            n["node_id"],
            n["tier"],
            n["state"] + ("!" if n["problems"] else ""),
            n["run_id"],
            _age(n["heartbeat_age_s"]) + " ago",
            ",".join(sorted(n["models"])),
            _note(n),
        )
        for n in sorted(nodes, key=lambda n: (n["tier"], n["node_id"]))
    ]
    return table(["NODE", "TIER", "STATE", "RUN", "HEARTBEAT", "MODELS", "NOTE"], rows)


def _note(node: dict[str, Any]) -> str:
    if node["drain"]:
        return f"drained by {node['drain']['by']}: {node['drain']['reason']}"
    return "; ".join(node["problems"])


def show_queues(queues: list[dict[str, Any]]) -> str:
    rows = [
        (
            q["queue"],
            q["depth"],
            _age(q["oldest_wait_s"]),
            f"{q['pending']['code']}: {q['pending']['text']}" if q.get("pending") else "",
        )
        for q in queues
    ]
    return table(["QUEUE", "DEPTH", "OLDEST WAIT", "WHY WAITING"], rows)


def parser() -> argparse.ArgumentParser:
    doc = __doc__ or ""
    parse = argparse.ArgumentParser(
        prog="labctl",
        description=doc.split("\n\n")[0],
        epilog=doc.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parse.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parse.add_argument("--api-url", help="the controller's URL (default: LAB_API_URL)")
    commands = parse.add_subparsers(dest="command", required=True)
    commands.add_parser("nodes", help="list nodes")
    commands.add_parser("queues", help="list queues")
    drain = commands.add_parser("drain", help="drain a node")
    drain.add_argument("node")
    drain.add_argument("--reason", required=True, help="why; kept with the drain")
    commands.add_parser("undrain", help="undrain a node").add_argument("node")
    commands.add_parser("run", help="show a run").add_argument("run_id")
    commands.add_parser("cancel", help="cancel a run").add_argument("run_id")
    commands.add_parser("revoke", help="revoke a worker's token").add_argument("node")
    return parse


def run(args: argparse.Namespace) -> tuple[Any, str]:
    """Execute the command; return its JSON value and its human rendering."""
    client = Client(api_url=args.api_url)
    if args.command == "nodes":
        nodes = client.nodes()
        return nodes, show_nodes(nodes)
    if args.command == "queues":
        queues = client.queues()
        return queues, show_queues(queues)
    if args.command == "revoke":
        revoked = client.revoke_worker(args.node)
        return revoked, f"{args.node}: token revoked (fingerprint {revoked['revoked'][:12]}…)"
    if args.command in ("drain", "undrain"):
        node = (
            client.drain(args.node, args.reason)
            if args.command == "drain"
            else client.undrain(args.node)
        )
        return node, f"{node['node_id']}: {node['state']}"
    status = client.status(args.run_id) if args.command == "run" else client.cancel(args.run_id)
    return status, describe_run(status)


def describe_run(status: dict[str, Any]) -> str:
    """Return a run's state; a finished run's result; a waiting run's reason."""
    if status["state"] in ("succeeded", "failed"):
        return describe_result(status)
    line = f"run {status['run_id']}: {status['state']} on {status['queue']}"
    if status.get("pending"):
        line += f"\nwaiting: {status['pending']['code']}: {status['pending']['text']}"
    return line


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        value, text = run(args)
    except ConfigMissing as exc:
        print(f"labctl: {exc}", file=sys.stderr)
        return 2
    except SubmitError as exc:
        print(f"labctl: {exc.reason}", file=sys.stderr)
        return 1
    print(json.dumps(value, indent=2) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
