"""What the money pipeline needs from the outside world: a biller, a payment rail, a fault hook.

The money domain declares these protocols; `tools.integrations.stripe` and
`tools.integrations.solana` implement them, and the composition roots (graphs/, ui/) wire them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from sqlalchemy.orm import Session

from store.ledger import ChainSubmission
from store.models import Organization

FaultHook = Callable[[str], None]
"""Called at every boundary between a committed local step and the next external call."""

Purpose = Literal["payout", "receipt"]


def no_fault(point: str) -> None:
    """Do nothing at a pipeline boundary (the production hook)."""


class Biller(Protocol):
    """What metering needs from Stripe (or its demo stand-in)."""

    mode: Literal["stripe", "demo"]

    def ensure_customer(self, org: Organization) -> str:
        """Return the organisation's Stripe customer id, creating it once."""
        ...

    def send_meter_event(
        self, *, identifier: str, customer_id: str, value: int, timestamp: int, key: str
    ) -> bool:
        """Send one meter event; return True when Stripe already had this identifier."""
        ...


@dataclass(frozen=True)
class SignedMemo:
    """What a stored signed transaction proves: its memo and whether its signature holds."""

    memo: str | None
    signature_valid: bool


class PaymentRail(Protocol):
    """What payouts and receipts need from a chain: validate, submit once, read back."""

    label: str
    """Names the chain in ledger memos and receipts ("local chain", "solana rpc")."""

    def check_address(self, address: str) -> None:
        """Raise `InvalidInputError` unless `address` is a valid recipient address."""
        ...

    async def submit(
        self,
        *,
        session: Session,
        purpose: Purpose,
        ref_id: str,
        memo: str,
        now: datetime,
        to: str | None = None,
        lamports: int = 0,
        fault: FaultHook = no_fault,
    ) -> ChainSubmission | None:
        """Drive the payout or receipt `ref_id` to a final state at most once.

        Returns:
            The submission (`finalized`, `failed`, or still in flight), or None when every
            signature it tried expired unseen.
        """
        ...

    def read_signed(self, submission: ChainSubmission) -> SignedMemo:
        """Decode a stored submission: its memo and whether its first signature is valid."""
        ...

    async def is_finalized(self, signature: str) -> bool:
        """Return whether the chain has finalized `signature`."""
        ...
