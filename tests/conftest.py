"""Shared fixtures for the whole suite."""

import pytest
from django.utils import translation


@pytest.fixture(autouse=True)
def english_after_each_test():
    """A request under /zh-hans/ activates Chinese on the test's thread; the next test must not
    inherit it."""
    yield
    translation.deactivate()
