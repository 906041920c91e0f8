"""Find organisations by what operators call them ("Jonas", "gamer Jonas", "Acme AI", "acme-ai")."""

from __future__ import annotations

import logging
import re

from pydantic import BaseModel
from sqlalchemy.orm import Session

from store import repo
from tools.errors import InvalidInputError

logger = logging.getLogger(__name__)

ORG_KINDS = ("enterprise", "datacenter", "gamer")
_WORD = re.compile(r"[a-z0-9]+")


class OrgMatch(BaseModel):
    """One organisation matching a name."""

    id: str
    name: str
    kind: str


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def find_organizations(*, session: Session, query: str, kind: str | None = None) -> list[OrgMatch]:
    """Return organisations whose id is `query`, or whose id and name contain all its words.

    An exact id match wins alone; otherwise every match is returned, ordered by id.

    Raises:
        InvalidInputError: `query` has no letters or digits, or `kind` is not an organisation kind.
    """
    if kind is not None and kind not in ORG_KINDS:
        raise InvalidInputError(f"kind {kind!r}: use one of {', '.join(ORG_KINDS)} or leave it out")
    wanted = _words(query)
    if not wanted:
        raise InvalidInputError(f"organisation name {query!r} is empty: give a name or an id")
    orgs = repo.list_organizations(session=session, kind=kind)
    exact = [o for o in orgs if o.id == query.strip().lower()]
    matches = exact or [o for o in orgs if set(wanted) <= set(_words(f"{o.id} {o.name}"))]
    return [OrgMatch(id=o.id, name=o.name, kind=o.kind) for o in matches]
