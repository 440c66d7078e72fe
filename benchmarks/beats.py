"""Heartbeat load: simulated nodes heartbeating against the controller's API.

A load process drives a slice of a simulated fleet with asyncio and
hand-written HTTP/1.1, so that the client spends as little of the machine as
it can (the controller shares it):

- ``flood``: a few connections send heartbeats back to back for a while;
  what the controller sustains.
- ``paced``: every node heartbeats at the interval, at its own phase, on a
  keep-alive connection of its own, as a real fleet does; a node whose last
  heartbeat is still unanswered skips its turn, as a worker's loop does.
- ``raw``: the same writes (the registry's heartbeat script) straight to
  Redis with redis-py, one at a time; the reference of ``flood``.

Each process prints one JSON line: counts, errors by kind, and latencies.
Nodes are ``sim-00000`` and on; they must be registered first.

    python -m benchmarks.beats flood|paced|raw --target URL --first 0 --count 500 \\
        [--secret-file F] [--connections 8] [--duration 5] [--interval 5] [--start T]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["HEARTBEAT_BODY", "node_name"]

HEARTBEAT_BODY = json.dumps(
    {"run_id": None, "consuming": ["research-micro", "research-any"], "problems": []},
    separators=(",", ":"),
).encode()
TIMEOUT_S = 5.0  # the worker's own client (worker.heartbeat.RegistryClient) waits this long


def node_name(index: int) -> str:
    return f"sim-{index:05d}"


@dataclass
class Tally:
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # send -> answer
    delays: list[float] = field(default_factory=list)  # due -> answer (paced)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def request(host: str, node_id: str, token: str) -> bytes:
    head = (
        f"POST /v1/nodes/{node_id}/heartbeat HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(HEARTBEAT_BODY)}\r\n\r\n"
    )
    return head.encode() + HEARTBEAT_BODY


class Connection:
    """One keep-alive HTTP/1.1 connection to the API."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, payload: bytes) -> int:
        """Send one request and return the answer's status; raise OSError."""
        if self.reader is not None and self.reader.at_eof():
            self.drop()  # the server closed it while idle: open another, as httpx does
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(payload)
        status = int((await self.reader.readline()).split()[1])
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        await self.reader.readexactly(length)
        if close:
            self.drop()
        return status

    def drop(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def tokens(secret_file: Path, first: int, count: int) -> list[tuple[str, str]]:
    from controller.auth import worker_token

    secret = secret_file.read_bytes().strip()
    return [
        (node_name(i), worker_token(secret, node_name(i))) for i in range(first, first + count)
    ]


async def beat(
    connection: Connection, payload: bytes, tally: Tally, due: float | None = None
) -> None:
    sent = time.monotonic()
    tally.sent += 1
    try:
        status = await asyncio.wait_for(connection.post(payload), TIMEOUT_S)
    except (TimeoutError, OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
        connection.drop()
        tally.error("timeout" if isinstance(exc, TimeoutError) else "connection")
        return
    answered = time.monotonic()
    if status != 200:
        tally.error(f"http {status}")
        return
    tally.ok += 1
    tally.latencies.append(answered - sent)
    if due is not None:
        tally.delays.append(answered - due)


async def flood(args: argparse.Namespace, tally: Tally) -> None:
    host, _, port = args.target.removeprefix("http://").partition(":")
    nodes = tokens(args.secret_file, args.first, args.count)
    payloads = [request(host, node, token) for node, token in nodes]
    await until(args.start)
    stop = time.monotonic() + args.duration

    async def one(offset: int) -> None:
        connection = Connection(host, int(port))
        index = offset
        while time.monotonic() < stop:
            await beat(connection, payloads[index % len(payloads)], tally)
            if args.reuse == "no":
                connection.drop()
            index += args.connections
        connection.drop()

    await asyncio.gather(*(one(i) for i in range(args.connections)))


async def paced(args: argparse.Namespace, tally: Tally) -> None:
    host, _, port = args.target.removeprefix("http://").partition(":")
    nodes = tokens(args.secret_file, args.first, args.count)
    payloads = [request(host, node, token) for node, token in nodes]
    # One keep-alive connection per node, as each worker holds one.
    connections = [Connection(host, int(port)) for _ in payloads]
    waiting: set[int] = set()
    await until(args.start)
    began = time.monotonic()
    pending: set[asyncio.Task[None]] = set()

    async def send(index: int, due: float) -> None:
        if index in waiting:  # a worker sends its next heartbeat only after the last
            tally.sent += 1
            tally.error("previous heartbeat still waiting")
            return
        waiting.add(index)
        try:
            await beat(connections[index], payloads[index], tally, due)
        finally:
            waiting.discard(index)

    # Node i is due at began + phase_i + k * interval, phases spread evenly.
    schedule = sorted(
        (began + args.interval * i / len(payloads) + args.interval * k, i)
        for k in range(int(args.duration / args.interval))
        for i in range(len(payloads))
    )
    for due, index in schedule:
        await until(due)
        task = asyncio.create_task(send(index, due))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    for connection in connections:
        connection.drop()


def raw(args: argparse.Namespace, tally: Tally) -> None:
    import redis

    from controller.registry import Registry

    registry = Registry(redis.Redis.from_url(args.target))
    names = [node_name(i) for i in range(args.first, args.first + args.count)]
    consuming = ["research-micro", "research-any"]
    asyncio.run(until(args.start))
    stop, index = time.monotonic() + args.duration, 0
    while time.monotonic() < stop:
        sent = time.monotonic()
        tally.sent += 1
        registry.heartbeat(names[index % len(names)], None, consuming, [])
        tally.ok += 1
        tally.latencies.append(time.monotonic() - sent)
        index += 1


async def until(moment: float | None) -> None:
    if moment is not None:
        await asyncio.sleep(max(0.0, moment - time.monotonic()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["flood", "paced", "raw"])
    parser.add_argument("--target", required=True, help="API URL, or Redis URL for raw")
    parser.add_argument("--secret-file", type=Path, help="the controller's worker secret")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--start", type=float, help="monotonic time to start at")
    parser.add_argument(
        "--reuse",
        choices=["yes", "no"],
        default="yes",
        help="keep connections open (yes), or open one per heartbeat (no: a worker whose "
        "connection the server closed while it waited out its interval)",
    )
    args = parser.parse_args()
    tally = Tally()
    began = time.monotonic()
    if args.mode == "raw":
        raw(args, tally)
    else:
        asyncio.run(flood(args, tally) if args.mode == "flood" else paced(args, tally))
    report: dict[str, Any] = {**tally.__dict__, "elapsed_s": time.monotonic() - began}
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
