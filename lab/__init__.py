"""The lab: real Debian machines on one Linux host, booted with
systemd-nspawn from a cached base tree, for testing roles over SSH.

Run it from a checkout as ``python -m lab``; it is not part of the wheel.
"""

from lab.errors import LabError
from lab.lifecycle import Lab, MachineStatus
from lab.shape import MachineSpec, default_shape, make_spec, parse_spec

__all__ = [
    "Lab",
    "LabError",
    "MachineSpec",
    "MachineStatus",
    "default_shape",
    "make_spec",
    "parse_spec",
]
