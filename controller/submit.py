"""Submit runs to the cluster from Python: what researchers call from a harness.

    from controller import submit

    run = submit.submit("gemma3-270m", prompt="Name three rivers.", max_tokens=32)
    print(run.run_id, run.queue)          # at once
    final = submit.wait(run.run_id, progress=print)
    print(final["result"]["output"], final["result"]["telemetry"]["summary"])

The API address and token come from ``LAB_API_URL`` and ``LAB_TOKEN``, or
from a file of ``KEY=value`` lines: ``$LAB_CONFIG`` if set, else
``~/.config/research-orchestration/client.env``. Explicit arguments win.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3

__all__ = [
    "Client",
    "ClientConfig",
    "ConfigMissing",
    "RunFailed",
    "RunRefused",
    "RunTimeout",
    "SubmitError",
    "Submitted",
    "cancel",
    "explain",
    "result",
    "status",
    "submit",
    "wait",
]

FINAL = ("succeeded", "failed", "cancelled")
DEFAULT_CONFIG = Path("~/.config/research-orchestration/client.env")


class SubmitError(Exception):
    """The controller refused a request, or could not be reached."""

    def __init__(
        self, reason: str, status: int | None = None, body: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.body = dict(body or {})


class ConfigMissing(SubmitError):
    """Neither arguments, environment nor config file say where the API is."""


class RunRefused(SubmitError):
    """No available node could serve the run; ``decision`` explains why."""

    @property
    def decision(self) -> dict[str, Any]:
        decision: dict[str, Any] = self.body.get("error", {}).get("decision", {})
        return decision


class RunFailed(SubmitError):
    """The run ended failed or cancelled; ``run`` is its final status."""

    @property
    def run(self) -> dict[str, Any]:
        return self.body


class RunTimeout(SubmitError):
    """``wait`` gave up before the run finished; the run goes on."""


@dataclass(frozen=True)
class ClientConfig:
    api_url: str
    token: str

    @classmethod
    def resolve(
        cls,
        api_url: str | None = None,
        token: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ClientConfig:
        """Return the configuration from arguments, environment, then file."""
        env = os.environ if env is None else env
        path = Path(env.get("LAB_CONFIG") or DEFAULT_CONFIG).expanduser()
        from_file = _read_env_file(path)
        url = api_url or env.get("LAB_API_URL") or from_file.get("LAB_API_URL")
        secret = token or env.get("LAB_TOKEN") or from_file.get("LAB_TOKEN")
        if not url or not secret:
            missing = " and ".join(
                n for n, v in (("LAB_API_URL", url), ("LAB_TOKEN", secret)) if not v
            )
            raise ConfigMissing(
                f"{missing} not set: export it, or write it to {path} as KEY=value lines"
            )
        return cls(url.rstrip("/"), secret)


def _read_env_file(path: Path) -> dict[str, str]:
    """Read ``KEY=value`` lines (optionally prefixed by ``export``)."""
    if not path.is_file():
        return {}
    values = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip().removeprefix("export ").strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("'\"")
    return values


@dataclass(frozen=True)
class Submitted:
    """A run the controller accepted: its id and the queue it waits on."""

    run_id: str
    queue: str
    reason: str


def run_body(
    model: str | None = None,
    prompt: str | None = None,
    *,
    prompts: list[str] | None = None,
    max_tokens: int | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Return the JSON body of a run request, leaving out what is not given."""
    body = {
        "model": model,
        "prompt": prompt,
        "prompts": prompts,
        "max_tokens": max_tokens,
        **options,
    }
    return {key: value for key, value in body.items() if value is not None}


class Client:
    """A connection to the controller's API with one token."""

    def __init__(
        self, api_url: str | None = None, token: str | None = None, timeout_s: float = 30.0
    ) -> None:
        self.config = ClientConfig.resolve(api_url, token)
        # urllib3 rather than a richer client: a run's submission is one short
        # request, and this keeps the client's share of it small (see
        # benchmarks/submit_latency.py). One kept-alive connection, no retries
        # (a POST must not be sent twice).
        self.http = urllib3.PoolManager(
            maxsize=1,
            retries=False,
            timeout=urllib3.Timeout(total=timeout_s),
            headers={"Authorization": f"Bearer {self.config.token}"},
        )

    def request(
        self, method: str, path: str, json: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send a request; return its JSON body or raise SubmitError with the reason."""
        try:
            response = self.http.request(method, f"{self.config.api_url}{path}", json=json)
        except urllib3.exceptions.HTTPError as exc:
            raise SubmitError(
                f"cannot reach the controller at {self.config.api_url}: {exc}"
            ) from None
        reason = response.reason or f"HTTP {response.status}"
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            text = response.data.decode("utf-8", "replace")[:500]
            body = {"error": {"reason": text or reason}}
        if response.status == 409:
            raise RunRefused(body["error"]["reason"], 409, body)
        if response.status >= 400:
            raise SubmitError(
                str(body.get("error", {}).get("reason") or reason), response.status, body
            )
        return body

    def submit(
        self, model: str | None = None, prompt: str | None = None, **options: Any
    ) -> Submitted:
        """Queue a run; return at once with its id. Raise RunRefused if no node
        could serve it, SubmitError for an invalid request."""
        body = self.request("POST", "/v1/runs", json=run_body(model, prompt, **options))
        return Submitted(body["run_id"], body["queue"], body["reason"])

    def explain(
        self, model: str | None = None, prompt: str | None = None, **options: Any
    ) -> dict[str, Any]:
        """Return where a run would go and why, queueing nothing."""
        return self.request("POST", "/v1/runs/explain", json=run_body(model, prompt, **options))

    def status(self, run_id: str) -> dict[str, Any]:
        """Return a run's current state (and result once finished)."""
        return self.request("GET", f"/v1/runs/{run_id}")

    def cancel(self, run_id: str) -> dict[str, Any]:
        return self.request("POST", f"/v1/runs/{run_id}/cancel")

    def wait(
        self,
        run_id: str,
        timeout_s: float | None = None,
        progress: Callable[[dict[str, Any]], object] | None = None,
        poll_s: float = 0.2,
        max_poll_s: float = 2.0,
    ) -> dict[str, Any]:
        """Poll until the run finishes; return its final status.

        ``progress`` is called with the status each time its state changes,
        and with the queue position while it waits. Raise RunTimeout if it
        has not finished within ``timeout_s``.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        seen: tuple[object, ...] = ()
        while True:
            current = self.status(run_id)
            signature = (current["state"], current.get("queue_depth"), current.get("node_id"))
            if progress is not None and signature != seen:
                progress(current)
            seen = signature
            if current["state"] in FINAL:
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise RunTimeout(
                    f"run {run_id} still {current['state']} after {timeout_s} s", body=current
                )
            time.sleep(poll_s)
            poll_s = min(poll_s * 1.5, max_poll_s)

    def result(self, run_id: str, timeout_s: float | None = None) -> dict[str, Any]:
        """Wait for the run and return its result; raise RunFailed if it failed."""
        final = self.wait(run_id, timeout_s)
        if final["state"] != "succeeded":
            error = final.get("error") or {}
            reason = f"run {run_id} {final['state']}: {error.get('message', 'no reason given')}"
            raise RunFailed(reason, body=final)
        run_result: dict[str, Any] = final["result"]
        return run_result

    # Operators' calls (labctl uses them).

    def nodes(self) -> list[dict[str, Any]]:
        nodes: list[dict[str, Any]] = self.request("GET", "/v1/nodes")["nodes"]
        return nodes

    def queues(self) -> list[dict[str, Any]]:
        queues: list[dict[str, Any]] = self.request("GET", "/v1/queues")["queues"]
        return queues

    def drain(self, node_id: str, reason: str) -> dict[str, Any]:
        return self.request("POST", f"/v1/nodes/{node_id}/drain", json={"reason": reason})

    def undrain(self, node_id: str) -> dict[str, Any]:
        return self.request("POST", f"/v1/nodes/{node_id}/undrain")

    def deregister(self, node_id: str) -> dict[str, Any]:
        return self.request("DELETE", f"/v1/nodes/{node_id}")

    def revoke_worker(self, node_id: str) -> dict[str, Any]:
        return self.request("POST", "/v1/tokens/revoke", json={"node_id": node_id})


_default: Client | None = None


def _client() -> Client:
    global _default  # noqa: PLW0603 - one lazily built client per process
    if _default is None:
        _default = Client()
    return _default


def submit(model: str | None = None, prompt: str | None = None, **options: Any) -> Submitted:
    """Queue a run with the configured client; see Client.submit."""
    return _client().submit(model, prompt, **options)


def explain(model: str | None = None, prompt: str | None = None, **options: Any) -> dict[str, Any]:
    """Explain where a run would go; see Client.explain."""
    return _client().explain(model, prompt, **options)


def status(run_id: str) -> dict[str, Any]:
    """Return a run's state; see Client.status."""
    return _client().status(run_id)


def wait(
    run_id: str,
    timeout_s: float | None = None,
    progress: Callable[[dict[str, Any]], object] | None = None,
) -> dict[str, Any]:
    """Wait for a run to finish; see Client.wait."""
    return _client().wait(run_id, timeout_s, progress)


def result(run_id: str, timeout_s: float | None = None) -> dict[str, Any]:
    """Wait for a run and return its result; see Client.result."""
    return _client().result(run_id, timeout_s)


def cancel(run_id: str) -> dict[str, Any]:
    """Cancel a run; see Client.cancel."""
    return _client().cancel(run_id)
