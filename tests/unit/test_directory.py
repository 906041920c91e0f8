import pytest

from store.seed import seed_fleet
from tools.errors import InvalidInputError
from tools.money.directory import find_organizations


@pytest.fixture
def seeded(session, now):
    seed_fleet(session=session, now=now)
    session.commit()
    return session


@pytest.mark.parametrize(
    ("query", "kind", "ids"),
    [
        ("Jonas", None, ["gamer-jonas"]),
        ("jonas", "gamer", ["gamer-jonas"]),
        ("gamer-giulia", None, ["gamer-giulia"]),
        ("Acme AI", None, ["acme-ai"]),
        ("acme", "enterprise", ["acme-ai"]),
        ("acme", "gamer", []),
        ("gamer", "gamer", ["gamer-amelia", "gamer-giulia", "gamer-jonas", "gamer-tyler"]),
        ("nobody", None, []),
    ],
)
def test_names_resolve_to_organisation_ids(seeded, query, kind, ids):
    assert [m.id for m in find_organizations(session=seeded, query=query, kind=kind)] == ids


def test_bad_queries_name_the_value(seeded):
    with pytest.raises(InvalidInputError, match="'  '"):
        find_organizations(session=seeded, query="  ")
    with pytest.raises(InvalidInputError, match="'player'"):
        find_organizations(session=seeded, query="jonas", kind="player")
