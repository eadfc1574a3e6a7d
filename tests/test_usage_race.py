"""A real race on the usage totals: 24 threads behind a barrier count the same event at once, on a
file-backed SQLite database and on PostgreSQL, round after round, each round on a total that does
not exist yet (so the first UPDATE finds nothing and the INSERTs race too). Every event must be
counted exactly once. The same race against a read-modify-write version (here, never in the app)
loses counts, which shows the test can fail.

As in test_redemption_race, each database runs in a subprocess configured only by DATABASE_URL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.postgres import scratch_database
from tests.races import race, races_on

RACERS = 24
ROUNDS = 16


# --- the race, run inside the subprocess ---------------------------------------------------------


def count_unguarded(tool: str, name: str) -> None:
    """The bug the app avoids: read the total, add in Python, write it back."""
    from portraitsite.models import DailyCount
    from portraitsite.usage import today

    row, _created = DailyCount.objects.get_or_create(day=today(), tool=tool, name=name)
    DailyCount.objects.filter(pk=row.pk).update(value=row.value + 1)


def race_round(count, name: str) -> dict:
    from portraitsite.models import DailyCount
    from portraitsite.usage import today

    def attempt() -> str:
        count("cutout", name)
        return "counted"

    outcomes = race(attempt, RACERS)
    rows = DailyCount.objects.filter(day=today(), tool="cutout", name=name)
    return {
        "errors": sorted({o for o in outcomes if o.startswith("error")}),
        "rows": rows.count(),
        "value": int(sum(row.value for row in rows)),
    }


def run_races() -> dict:
    import logging

    import django

    django.setup()
    from django.core.management import call_command

    from portraitsite import usage

    call_command("migrate", verbosity=0)
    failures_to_count: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            failures_to_count.append(record.getMessage())

    logging.getLogger("portraitsite.usage").addHandler(Collect())
    results = {
        "guarded": [race_round(usage.count, f"event-{n}") for n in range(ROUNDS)],
        "unguarded": [race_round(count_unguarded, f"unguarded-{n}") for n in range(ROUNDS)],
        "not_counted": failures_to_count,
    }
    return results


# --- the tests ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sqlite_races(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("usage-race") / "totals.sqlite3"
    return races_on(__file__, f"sqlite:///{path}")


@pytest.fixture(scope="module")
def postgres_races() -> Iterator[dict]:
    with scratch_database("usage") as database_url:
        yield races_on(__file__, database_url)


BACKENDS = [
    pytest.param("sqlite_races", id="sqlite-file"),
    pytest.param("postgres_races", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_event_is_counted_exactly_once(request, backend):
    results = request.getfixturevalue(backend)
    assert results["not_counted"] == [], "counting failed (and was only logged) under the race"
    for result in results["guarded"]:
        assert result == {"errors": [], "rows": 1, "value": RACERS}


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_the_conditional_update_the_same_race_loses_counts(request, backend):
    rounds = request.getfixturevalue(backend)["unguarded"]
    # Not every round has to go wrong, but across the rounds some must: otherwise the race above
    # could pass without really racing.
    assert any(r["value"] < RACERS or r["errors"] for r in rounds), rounds


if __name__ == "__main__":
    print(json.dumps(run_races()))
