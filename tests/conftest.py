"""Shared fixtures for the whole suite."""

import pytest
from django.utils import translation

# The fake providers' fixtures, for every test module (they start real local HTTP servers).
from tests.fakes.dashscope import dashscope_fake, dashscope_sleeps  # noqa: F401
from tests.fakes.removebg import removebg_fake, removebg_sleeps  # noqa: F401


@pytest.fixture(autouse=True)
def english_after_each_test():
    """A request under /zh-hans/ activates Chinese on the test's thread; the next test must not
    inherit it."""
    yield
    translation.deactivate()
