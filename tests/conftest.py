"""Fixtures shared by every test directory."""

pytest_plugins = ["lab.pytest_plugin"]
