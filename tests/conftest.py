"""Shared fixtures for the whole suite."""

import pytest
from django.utils import translation

# The fake providers' fixtures (removebg_fake, dashscope_fake and their *_sleeps), for every test
# module: they start real local HTTP servers.
pytest_plugins = ["tests.fakes.dashscope", "tests.fakes.removebg"]


@pytest.fixture(autouse=True)
def no_removebg_balance_carried_over():
    """The remove.bg balance is cached per process: each test reads its own fake's."""
    from django.core.cache import cache

    from segmentation.providers import removebg_account

    removebg_account.forget()
    cache.delete(removebg_account.LOW_WARNING_GATE)
    yield
    removebg_account.forget()


@pytest.fixture(autouse=True)
def jobs_finish_within_their_test():
    """A job still running in the pool after its test writes to the database (usage totals, code
    confirmations) while the next test empties it: wait for the pool first."""
    yield
    from segmentation import jobs

    if jobs._pool is not None:
        jobs._pool.drain(60)


@pytest.fixture(autouse=True)
def english_after_each_test():
    """A request under /zh-hans/ activates Chinese on the test's thread; the next test must not
    inherit it."""
    yield
    translation.deactivate()
