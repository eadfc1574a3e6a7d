"""Shared fixtures. The environment for the test run is set in the top-level conftest.py."""
