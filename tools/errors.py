"""Define the errors a caller (person or model) can correct: they name the value and the fix."""

from __future__ import annotations


class DomainError(Exception):
    """A problem the caller can fix: bad input, unknown id, a rule that refuses the action."""


class InvalidInputError(DomainError, ValueError):
    """A value is out of range or malformed."""


class NotFoundError(DomainError, LookupError):
    """An id does not exist."""


class UnknownZoneError(NotFoundError):
    """A zone code is not one of the eleven supported zones."""


class NoGridDataError(DomainError):
    """A grid source has no reading for the zone and time asked for."""


class IllegalTransitionError(DomainError):
    """A workload status change is not allowed from its current status."""


class ConflictError(DomainError):
    """Someone else changed the object first; reload it and decide again."""


class PermissionDeniedError(DomainError):
    """The caller is not allowed to act on this object."""


class RerouteRefusedError(DomainError):
    """A reroute is not allowed (limit reached, wrong status)."""
