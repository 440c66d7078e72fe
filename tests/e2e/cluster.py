"""The provisioned lab as the end-to-end tests see it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from testinfra.host import Host

from controller.submit import Client
from lab import Lab, pytest_plugin
from lab.provision import PlaybookRun, operator_token, read_env, run_playbook


@dataclass
class Cluster:
    """The provisioned lab: its first site.yml run and how to reach it."""

    lab: Lab
    first: PlaybookRun
    address: str

    def play(self, playbook: str, **options: Any) -> PlaybookRun:
        """Run ``playbook`` on the lab and return its outcome."""
        return run_playbook(self.lab.layout, playbook, say=lambda line: None, **options)

    def researcher(self) -> Client:
        env = read_env(self.lab.layout)
        return Client(env["LAB_API_URL"], env["LAB_TOKEN"])

    def operator(self) -> Client:
        return Client(f"http://{self.address}:8080", operator_token(self.lab.layout))

    def host(self, name: str) -> Host:
        return pytest_plugin.testinfra_host(self.lab, name)
