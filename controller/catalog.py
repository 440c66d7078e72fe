"""The model catalog: what each model is, where it comes from, what it needs.

The catalog is data kept in the inventory's group variables
(``model_catalog``); the controller role writes it to a JSON file that the
controller reads at start. Workers pull the files; the dispatcher reads the
needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["RUNTIMES", "Catalog", "CatalogError", "ModelEntry", "load_catalog"]

RUNTIMES = ("llama_cpp", "command")
MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


class CatalogError(ValueError):
    """A catalog entry that is missing a field or has a wrong one."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    file: str
    url: str
    sha256: str
    size_bytes: int
    ram_gb: float
    runtime: str = "llama_cpp"
    gpu: bool = False
    gpu_memory_gb: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "url": self.url,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "ram_gb": self.ram_gb,
            "runtime": self.runtime,
            "gpu": self.gpu,
            "gpu_memory_gb": self.gpu_memory_gb,
        }


def _is(value: object, kind: type) -> bool:
    """isinstance, except that a bool is not a number here."""
    return kind is bool if isinstance(value, bool) else isinstance(value, kind)


def _field(name: str, data: Mapping[str, Any], key: str, kind: type, check: Any = None) -> Any:
    if key not in data:
        raise CatalogError(f"model {name!r}: {key}: required field is missing")
    value = data[key]
    if kind is float and _is(value, int):
        value = float(value)
    if not _is(value, kind):
        raise CatalogError(f"model {name!r}: {key}: expected {kind.__name__}, got {value!r}")
    if check is not None and not check(value):
        raise CatalogError(f"model {name!r}: {key}: {value!r} is not valid")
    return value


def parse_entry(name: str, data: object) -> ModelEntry:
    """Return the catalog entry ``name``; raise CatalogError naming the field."""
    if not MODEL_NAME.match(name):
        raise CatalogError(f"model {name!r}: name must be lowercase letters, digits, '.-_'")
    if not isinstance(data, Mapping):
        raise CatalogError(f"model {name!r}: expected a mapping of fields, got {data!r}")
    gpu = bool(data.get("gpu", False))
    return ModelEntry(
        name=name,
        file=_field(name, data, "file", str, _FILE.match),
        url=_field(name, data, "url", str, lambda v: v.startswith(("http://", "https://"))),
        sha256=_field(name, data, "sha256", str, _SHA256.match),
        size_bytes=_field(name, data, "size_bytes", int, lambda v: v > 0),
        ram_gb=_field(name, data, "ram_gb", float, lambda v: v > 0),
        runtime=str(data.get("runtime", "llama_cpp")),
        gpu=gpu,
        gpu_memory_gb=_field(name, data, "gpu_memory_gb", float) if gpu else 0.0,
    )


class Catalog(Mapping[str, ModelEntry]):
    """The models the cluster knows, by name."""

    def __init__(self, entries: Mapping[str, ModelEntry]) -> None:
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> ModelEntry:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def from_mapping(cls, data: object) -> Catalog:
        """Build a catalog from ``{name: fields}``; raise CatalogError if bad."""
        if not isinstance(data, Mapping):
            raise CatalogError(f"expected a mapping of model names to fields, got {data!r}")
        entries = {str(name): parse_entry(str(name), fields) for name, fields in data.items()}
        for entry in entries.values():
            if entry.runtime not in RUNTIMES:
                raise CatalogError(
                    f"model {entry.name!r}: runtime: expected one of {', '.join(RUNTIMES)}, "
                    f"got {entry.runtime!r}"
                )
        return cls(entries)


def load_catalog(path: Path) -> Catalog:
    """Read a catalog file (JSON or YAML, optionally under ``model_catalog``)."""
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if isinstance(data, Mapping) and "model_catalog" in data:
        data = data["model_catalog"]
    try:
        return Catalog.from_mapping(data or {})
    except CatalogError as exc:
        raise CatalogError(f"{path}: {exc}") from None
