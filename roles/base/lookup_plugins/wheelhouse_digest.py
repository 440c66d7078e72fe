"""Lookup: a digest of the files a wheelhouse is built from."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: wheelhouse_digest
short_description: First 16 hex digits of the SHA-256 of files and directories
description:
  - Hashes every file under each term (a file or a directory, walked in sorted
    order, skipping C(__pycache__) and compiled files), path and content, so
    that a wheelhouse built from them is rebuilt when, and only when, one
    changes. A missing term counts as empty, so an optional directory of
    prebuilt wheels may be absent.
options:
  _terms:
    description: Paths on the control node.
    required: true
"""

EXAMPLES = r"""
- name: Show the wheelhouse key
  ansible.builtin.debug:
    msg: "{{ lookup('wheelhouse_digest', 'pyproject.toml', 'controller') }}"
"""

RETURN = r"""
_raw:
  description: One string of 16 hex digits.
  type: list
  elements: str
"""


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        return []
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )


def digest(terms: list[str]) -> str:
    """Return the first 16 hex digits of the SHA-256 over ``terms``' files."""
    sha = hashlib.sha256()
    for term in terms:
        root = Path(term)
        for path in _files(root):
            sha.update(str(path.relative_to(root.parent)).encode() + b"\0")
            sha.update(path.read_bytes() + b"\0")
    return sha.hexdigest()[:16]


class LookupModule(LookupBase):
    def run(self, terms: list[Any], variables: Any = None, **kwargs: Any) -> list[str]:
        if not terms:
            raise AnsibleLookupError("wheelhouse_digest: expected at least one path")
        return [digest([str(term) for term in terms])]
