"""A real race: 50 threads behind a barrier redeem the same code at once, on a file-backed SQLite
database and on PostgreSQL, round after round. One conditional UPDATE must sell a one-use code
exactly once and a three-use code exactly three times. The same race against a read-modify-write
version (in this file, never in the app) oversells, which shows the test can fail.

Each database runs in a subprocess configured only by DATABASE_URL, the way the site is deployed,
so the test database of the rest of the suite (in-memory SQLite) is left alone. PostgreSQL gets a
database of its own (test_portraitsite_race_<pid>), created and dropped here; `test` is untouched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.postgres import scratch_database
from tests.races import race, races_on

RACERS = 50
ROUNDS = 20
USES = (1, 3)


# --- the race, run inside the subprocess ---------------------------------------------------------


def redeem_unguarded(code: str, tool: str) -> int:
    """The bug the app avoids: read `used`, decide in Python, write the new value back."""
    from unlock import codes
    from unlock.models import Redemption, UnlockCode
    from unlock.redemption import CodeRejected

    row = UnlockCode.objects.get(digest=codes.digest(codes.normalise(code)))
    if row.used >= row.max_uses:
        raise CodeRejected("used_up")
    UnlockCode.objects.filter(pk=row.pk).update(used=row.used + 1)
    return Redemption.objects.create(code=row, tool=tool).pk


def race_round(redeem, max_uses: int) -> dict:
    from unlock.issuing import issue
    from unlock.models import UnlockCode
    from unlock.redemption import CodeRejected

    batch = issue(1, max_uses=max_uses, expires_at=None, label="race")
    code = batch.displayed[0]

    def buy() -> str:
        try:
            redeem(code, "cutout")
        except CodeRejected as rejected:
            return rejected.reason
        return "sold"

    outcomes = race(buy, RACERS)
    row = UnlockCode.objects.get(pk=batch.ids[0])
    return {
        "sold": outcomes.count("sold"),
        "used_up": outcomes.count("used_up"),
        "errors": sorted({o for o in outcomes if o.startswith("error")}),
        "used": row.used,
        "redemptions": row.redemptions.count(),
    }


def release_round() -> dict:
    """Many threads give back the same redemption at once: the use comes back exactly once."""
    from unlock.issuing import issue
    from unlock.models import UnlockCode
    from unlock.redemption import redeem, release

    batch = issue(1, max_uses=3, expires_at=None, label="race")
    first = redeem(batch.displayed[0], "cutout")
    redeem(batch.displayed[0], "crowd")

    def give_back() -> str:
        release(first)
        return "released"

    errors = [outcome for outcome in race(give_back, RACERS) if outcome.startswith("error")]
    row = UnlockCode.objects.get(pk=batch.ids[0])
    return {"errors": sorted(set(errors)), "used": row.used, "redemptions": row.redemptions.count()}


def run_races() -> dict:
    import django

    django.setup()
    from django.core.management import call_command

    from unlock.redemption import redeem

    call_command("migrate", verbosity=0)
    results = {}
    for name, function in (("guarded", redeem), ("unguarded", redeem_unguarded)):
        for max_uses in USES:
            results[f"{name}/{max_uses}"] = [race_round(function, max_uses) for _ in range(ROUNDS)]
    results["release"] = [release_round() for _ in range(ROUNDS // 4)]
    return results


# --- the tests ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sqlite_races(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("race") / "codes.sqlite3"
    return races_on(__file__, f"sqlite:///{path}")


@pytest.fixture(scope="module")
def postgres_races() -> Iterator[dict]:
    with scratch_database("race") as database_url:
        yield races_on(__file__, database_url)


BACKENDS = [
    pytest.param("sqlite_races", id="sqlite-file"),
    pytest.param("postgres_races", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("max_uses", USES)
def test_a_code_is_sold_exactly_as_often_as_it_allows(request, backend, max_uses):
    rounds = request.getfixturevalue(backend)[f"guarded/{max_uses}"]
    assert len(rounds) == ROUNDS
    for result in rounds:
        assert result["errors"] == []
        assert result["sold"] == max_uses
        assert result["used_up"] == RACERS - max_uses
        assert result["used"] == result["redemptions"] == max_uses


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_releases_give_the_use_back_once(request, backend):
    for result in request.getfixturevalue(backend)["release"]:
        assert result == {"errors": [], "used": 1, "redemptions": 1}


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_the_guard_the_same_race_oversells(request, backend):
    results = request.getfixturevalue(backend)
    oversold = [r for max_uses in USES for r in results[f"unguarded/{max_uses}"] if r["sold"] > max_uses]
    # Not every round has to go wrong, but across 40 rounds some must: otherwise the race above
    # could pass without really racing.
    assert oversold, results["unguarded/1"]


if __name__ == "__main__":
    print(json.dumps(run_races()))
