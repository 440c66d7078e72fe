"""What machines a lab has: their names, roles and tiers."""

from __future__ import annotations

from dataclasses import dataclass

from controller.profiles import NODE_ID_PATTERN, ROLES
from controller.tiers import tier_model
from lab.errors import LabError

__all__ = ["TIER_RAM_GB", "MachineSpec", "default_shape", "parse_spec"]

# Lab machines share the host's RAM, so each profile states its tier and a
# RAM figure a real machine of that tier would report.
TIER_RAM_GB = {"micro": 3.8, "small": 7.6, "medium": 15.5, "large": 31.2}


@dataclass(frozen=True)
class MachineSpec:
    """One machine to boot: its node_id, roles and tier."""

    name: str
    roles: tuple[str, ...]
    tier: str

    @property
    def ram_gb(self) -> float:
        return TIER_RAM_GB[self.tier]


def default_shape(prefix: str = "lab") -> list[MachineSpec]:
    """Return the default lab: a controller, a micro and a small worker."""
    return [
        MachineSpec(f"{prefix}-controller", ("controller",), "small"),
        MachineSpec(f"{prefix}-micro-1", ("worker",), "micro"),
        MachineSpec(f"{prefix}-small-1", ("worker",), "small"),
    ]


def make_spec(name: str, roles: tuple[str, ...], tier: str) -> MachineSpec:
    """Return a checked MachineSpec; raise LabError naming the bad part."""
    if not NODE_ID_PATTERN.match(name):
        raise LabError(f"machine name {name!r}: expected lowercase letters, digits and hyphens")
    if not roles or any(role not in ROLES for role in roles):
        raise LabError(f"machine {name}: roles {roles!r}: expected {' and/or '.join(ROLES)}")
    if tier not in tier_model().names or tier not in TIER_RAM_GB:
        raise LabError(f"machine {name}: tier {tier!r}: expected one of {', '.join(TIER_RAM_GB)}")
    return MachineSpec(name, roles, tier)


def parse_spec(text: str) -> MachineSpec:
    """Return the machine described by ``NAME:ROLES[:TIER]`` (roles joined by
    commas, tier micro by default). Raises LabError for a bad description."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise LabError(
            f"machine {text!r}: expected NAME:ROLES[:TIER], e.g. lab-gpu-1:worker:small"
        )
    roles = tuple(role for role in parts[1].split(",") if role)
    return make_spec(parts[0], roles, parts[2] if len(parts) == 3 else "micro")
