"""Node profiles: one ``node_profile.yaml`` per node, validated as a whole.

A profile says what a machine is (RAM, CPUs, architecture, GPU) and what it
does (worker, controller). Its tier and queues follow from the tier model.
Every problem found is reported with the file, the field and what was
expected; a fleet with any bad profile is refused as a whole.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controller.tiers import TierError, TierModel, tier_model

__all__ = [
    "NODE_ID_PATTERN",
    "ROLES",
    "NodeProfile",
    "ProfileError",
    "load_fleet",
    "load_profile",
    "parse_profile",
]

NODE_ID_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
ROLES = ("worker", "controller")
_REQUIRED = ("node_id", "address", "roles", "ram_gb", "cpus", "arch")
_OPTIONAL = ("gpu", "gpu_memory_gb", "tier", "labels")
PROFILE_SUFFIXES = (".yaml", ".yml")
# libyaml's safe loader when PyYAML was built with it: ten times faster on
# fleets of thousands of profiles, and just as safe.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ProfileError(ValueError):
    """One or more problems in node profiles, one line each."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class NodeProfile:
    node_id: str
    address: str
    roles: tuple[str, ...]
    ram_gb: float
    cpus: int
    arch: str
    tier: str
    gpu: bool = False
    gpu_memory_gb: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)
    source: str = ""

    @property
    def is_worker(self) -> bool:
        return "worker" in self.roles

    @property
    def is_controller(self) -> bool:
        return "controller" in self.roles

    def queues(self, model: TierModel | None = None) -> list[str]:
        """Return the queues this node consumes, in reading order."""
        return (model or tier_model()).node_queues(self.tier, self.gpu)


def _kind(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Checker:
    """Collects the problems of one profile, each as 'source: field: text'."""

    def __init__(self, source: str, data: Mapping[str, Any]) -> None:
        self.source = source
        self.data = data
        self.problems: list[str] = []

    def fail(self, name: str, text: str) -> None:
        self.problems.append(f"{self.source}: {name}: {text}")

    def node_id(self, expected: str | None) -> str:
        value = self.data.get("node_id")
        if not isinstance(value, str) or not NODE_ID_PATTERN.match(value):
            self.fail(
                "node_id",
                "expected lowercase letters, digits and hyphens (a DNS label, at most "
                f"63 characters, not starting or ending with a hyphen), got {_kind(value)}",
            )
            return ""
        if expected is not None and value != expected:
            self.fail("node_id", f"{value!r} does not match the file name; expected {expected!r}")
        return value

    def address(self) -> str:
        value = self.data.get("address")
        if isinstance(value, str):
            try:
                ipaddress.ip_address(value)
                return value
            except ValueError:
                if _HOSTNAME.match(value):
                    return value
        self.fail("address", f"expected an IP address or a host name, got {_kind(value)}")
        return ""

    def roles(self) -> tuple[str, ...]:
        value = self.data.get("roles")
        if (
            isinstance(value, list)
            and value
            and all(role in ROLES for role in value)
            and len(set(value)) == len(value)
        ):
            return tuple(value)
        self.fail("roles", f"expected a list of {' and/or '.join(ROLES)}, got {_kind(value)}")
        return ()

    def positive(self, name: str, integer: bool = False) -> float:
        value = self.data.get(name)
        wanted = "a whole number" if integer else "a number"
        ok = isinstance(value, int) if integer else _number(value)
        if not ok or isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            self.fail(name, f"expected {wanted} above 0, got {_kind(value)}")
            return 0.0
        return float(value)

    def text(self, name: str) -> str:
        value = self.data.get(name)
        if isinstance(value, str) and value.strip():
            return value
        self.fail(name, f"expected a non-empty string such as 'x86_64', got {_kind(value)}")
        return ""

    def gpu(self) -> tuple[bool, float]:
        gpu = self.data.get("gpu", False)
        if not isinstance(gpu, bool):
            self.fail("gpu", f"expected true or false, got {_kind(gpu)}")
            return False, 0.0
        memory = self.data.get("gpu_memory_gb")
        if gpu and memory is None:
            self.fail("gpu_memory_gb", "required when gpu is true; expected a number above 0")
            return True, 0.0
        if gpu:
            return True, self.positive("gpu_memory_gb")
        if memory is not None:
            self.fail(
                "gpu_memory_gb", "given for a node without a GPU; set gpu: true or remove it"
            )
        return False, 0.0

    def labels(self) -> dict[str, str]:
        value = self.data.get("labels", {})
        if value is None:
            return {}
        if isinstance(value, Mapping) and all(
            isinstance(key, str) and re.fullmatch(r"[a-z_][a-z0-9_]*", key) for key in value
        ):
            scalars = all(isinstance(v, str | int | float | bool) for v in value.values())
            if scalars:
                return {key: str(v) for key, v in value.items()}
        self.fail(
            "labels",
            "expected a mapping of lowercase identifiers to strings or numbers, "
            f"got {_kind(value)}",
        )
        return {}

    def tier(self, ram_gb: float, model: TierModel) -> str:
        explicit = self.data.get("tier")
        if explicit is not None and not isinstance(explicit, str):
            self.fail("tier", f"expected one of {', '.join(model.names)}, got {_kind(explicit)}")
            return ""
        if explicit is None and not ram_gb:
            return ""  # ram_gb already reported
        try:
            return model.node_tier(ram_gb, explicit).name
        except TierError as exc:
            self.fail("tier" if explicit is not None else "ram_gb", str(exc))
            return ""

    def unknown_fields(self) -> None:
        for name in self.data:
            if name not in _REQUIRED + _OPTIONAL:
                known = ", ".join(_REQUIRED + _OPTIONAL)
                self.fail(str(name), f"unknown field; expected one of {known}")

    def missing_fields(self) -> bool:
        missing = [name for name in _REQUIRED if name not in self.data]
        for name in missing:
            self.fail(name, "required field is missing")
        return bool(missing)


def parse_profile(
    data: object,
    source: str,
    expected_id: str | None = None,
    model: TierModel | None = None,
) -> NodeProfile:
    """Return the profile in ``data``; raise ProfileError naming every problem.

    ``expected_id`` is the node_id the profile must carry (its file name).
    """
    model = model or tier_model()
    if not isinstance(data, Mapping):
        raise ProfileError(
            [f"{source}: expected a YAML mapping of profile fields, got {_kind(data)}"]
        )
    check = _Checker(source, data)
    check.unknown_fields()
    check.missing_fields()
    node_id = check.node_id(expected_id) if "node_id" in data else ""
    address = check.address() if "address" in data else ""
    roles = check.roles() if "roles" in data else ()
    ram_gb = check.positive("ram_gb") if "ram_gb" in data else 0.0
    cpus = int(check.positive("cpus", integer=True)) if "cpus" in data else 0
    arch = check.text("arch") if "arch" in data else ""
    gpu, gpu_memory_gb = check.gpu()
    tier = check.tier(ram_gb, model)
    labels = check.labels()
    if check.problems:
        raise ProfileError(check.problems)
    return NodeProfile(
        node_id=node_id,
        address=address,
        roles=roles,
        ram_gb=ram_gb,
        cpus=cpus,
        arch=arch,
        tier=tier,
        gpu=gpu,
        gpu_memory_gb=gpu_memory_gb,
        labels=labels,
        source=source,
    )


def load_profile(path: Path, model: TierModel | None = None) -> NodeProfile:
    """Read and validate one profile file, whose stem must be its node_id."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ProfileError(
            [f"{path}: not valid YAML{line}: {getattr(exc, 'problem', exc)}"]
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError([f"{path}: cannot be read: {exc}"]) from exc
    return parse_profile(data, str(path), expected_id=path.stem, model=model)


def profile_paths(directory: Path) -> list[Path]:
    """Return the profile files of a directory, sorted by name."""
    return sorted(p for p in directory.iterdir() if p.suffix in PROFILE_SUFFIXES and p.is_file())


def load_fleet(directory: Path, model: TierModel | None = None) -> list[NodeProfile]:
    """Return every profile in ``directory``, or raise ProfileError naming
    every problem in every file; never a part of the fleet."""
    if not directory.is_dir():
        raise ProfileError([f"{directory}: profiles directory does not exist"])
    paths = profile_paths(directory)
    if not paths:
        raise ProfileError([f"{directory}: no node profiles (*.yaml) found"])
    problems: list[str] = []
    profiles: list[NodeProfile] = []
    for path in paths:
        try:
            profiles.append(load_profile(path, model))
        except ProfileError as exc:
            problems.extend(exc.problems)
    problems.extend(_duplicates(profiles))
    if problems:
        raise ProfileError(problems)
    return profiles


def _duplicates(profiles: list[NodeProfile]) -> list[str]:
    seen: dict[str, str] = {}
    problems = []
    for profile in profiles:
        first = seen.setdefault(profile.node_id, profile.source)
        if first != profile.source:
            problems.append(
                f"{profile.source}: node_id: {profile.node_id!r} is already used by {first}; "
                "expected a unique node_id per node"
            )
    return problems
