"""Fixtures for every test suite in the repository."""

pytest_plugins = ["phoihop_testkit.plugin"]
