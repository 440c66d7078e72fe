"""Bearer tokens scoped to workers, researchers and operators.

Researcher and operator tokens are listed, as SHA-256 digests only, in the
controller's tokens file. A worker's token is derived from a secret the
controller holds and the worker's node id (``w1.<node_id>.<hmac>``), so that a
new worker needs no change on the controller, and a worker can only speak for
its own node. An operator can revoke any token; revocations live in Redis.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import redis
import yaml

__all__ = ["Identity", "Scope", "TokenBook", "TokenError", "worker_token"]

logger = logging.getLogger(__name__)
REVOKED_KEY = "auth:revoked"
_WORKER_PREFIX = "w1."


class Scope(StrEnum):
    WORKER = "worker"
    RESEARCHER = "researcher"
    OPERATOR = "operator"


class TokenError(ValueError):
    """A tokens file that cannot be used."""


@dataclass(frozen=True)
class Identity:
    """Who presented a token: a name, a scope and, for a worker, its node."""

    name: str
    scope: Scope
    fingerprint: str
    node_id: str | None = None

    def may(self, scope: Scope) -> bool:
        """True if this identity acts with ``scope`` (operators may research too)."""
        return self.scope == scope or (self.scope == Scope.OPERATOR and scope == Scope.RESEARCHER)


def fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def worker_token(secret: bytes, node_id: str) -> str:
    """Return the token of ``node_id`` under the controller's worker secret."""
    mac = hmac.new(secret, node_id.encode(), hashlib.sha256).hexdigest()
    return f"{_WORKER_PREFIX}{node_id}.{mac}"


class TokenBook:
    """Checks tokens against the tokens file, the worker secret and revocations."""

    def __init__(
        self,
        digests: dict[str, tuple[str, Scope]],
        worker_secret: bytes,
        client: redis.Redis | None = None,
    ) -> None:
        self._digests = digests  # sha256 hex -> (name, scope)
        self._secret = worker_secret
        self._redis = client

    @classmethod
    def load(cls, tokens_file: Path, secret_file: Path, client: redis.Redis | None) -> TokenBook:
        """Read the tokens file and worker secret; raise TokenError if unusable."""
        try:
            data: Any = yaml.safe_load(tokens_file.read_text(encoding="utf-8"))
            secret = secret_file.read_bytes().strip()
        except (OSError, yaml.YAMLError) as exc:
            raise TokenError(f"cannot read tokens: {exc}") from None
        if len(secret) < 32:
            raise TokenError(f"{secret_file}: worker secret must be at least 32 bytes")
        digests = {}
        for index, entry in enumerate((data or {}).get("tokens", [])):
            try:
                digests[str(entry["sha256"])] = (str(entry["name"]), Scope(entry["scope"]))
            except (KeyError, TypeError, ValueError):
                raise TokenError(
                    f"{tokens_file}: tokens[{index}]: expected name, scope "
                    f"({', '.join(Scope)}) and sha256"
                ) from None
        return cls(digests, secret, client)

    def identify(self, token: str) -> Identity | None:
        """Return who holds ``token``, or None if it is unknown or revoked."""
        digest = fingerprint(token)
        identity = self._worker(token, digest) or self._listed(digest)
        if identity is None or self.revoked(digest):
            return None
        return identity

    def revoke(self, identity_or_digest: str, by: str) -> None:
        """Revoke a token by its fingerprint."""
        if self._redis is None:
            raise TokenError("revocation needs Redis")
        self._redis.hset(REVOKED_KEY, identity_or_digest, json.dumps({"by": by}))
        logger.warning("token %s…: revoked by %s", identity_or_digest[:12], by)

    def revoke_worker(self, node_id: str, by: str) -> str:
        """Revoke the token of a node; return its fingerprint."""
        digest = fingerprint(worker_token(self._secret, node_id))
        self.revoke(digest, by)
        return digest

    def revoked(self, digest: str) -> bool:
        return bool(self._redis is not None and self._redis.hexists(REVOKED_KEY, digest))

    def _listed(self, digest: str) -> Identity | None:
        entry = self._digests.get(digest)
        return Identity(entry[0], entry[1], digest) if entry else None

    def _worker(self, token: str, digest: str) -> Identity | None:
        if not token.startswith(_WORKER_PREFIX) or token.count(".") < 2:
            return None
        node_id = token[len(_WORKER_PREFIX) : token.rindex(".")]
        if not hmac.compare_digest(token, worker_token(self._secret, node_id)):
            return None
        return Identity(f"worker:{node_id}", Scope.WORKER, digest, node_id)
