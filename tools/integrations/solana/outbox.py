"""Drive one payout or receipt transaction to a final on-chain state, safely across crashes.

The order is fixed: persist the signed bytes, signature, blockhash and last valid block height
(committed) -> send -> poll the signature -> finalized or failed. On restart the stored
signature is asked for first. A new signature is made only when the block height is past the
last valid height AND the old signature is absent afterwards: then the old transaction can never
land, so at most one transfer executes per payout.
"""

from __future__ import annotations

import base64
import logging
from datetime import datetime

from solders.keypair import Keypair
from sqlalchemy import select
from sqlalchemy.orm import Session

from store.ledger import ChainSubmission
from tools.integrations.solana.chain import Chain, build_transaction
from tools.money.ports import FaultHook, Purpose, no_fault

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
"""Signatures tried per payout or receipt before it is handed to a person."""


def latest_submission(*, session: Session, purpose: Purpose, ref_id: str) -> ChainSubmission | None:
    """Return the newest attempt for a payout or receipt."""
    return session.scalars(
        select(ChainSubmission)
        .where(ChainSubmission.purpose == purpose, ChainSubmission.ref_id == ref_id)
        .order_by(ChainSubmission.attempt.desc())
        .limit(1)
    ).one_or_none()


async def submit(
    *,
    session: Session,
    chain: Chain,
    payer: Keypair,
    purpose: Purpose,
    ref_id: str,
    memo: str,
    now: datetime,
    to: str | None = None,
    lamports: int = 0,
    polls: int = 3,
    fault: FaultHook = no_fault,
) -> ChainSubmission | None:
    """Advance the payout or receipt `ref_id` on chain; commits after each local step.

    Returns:
        The submission, `finalized` or `failed` when settled, `signed`/`sent` when still in
        flight (call again later), or None when MAX_ATTEMPTS signatures all proved absent.
    """
    sub = latest_submission(session=session, purpose=purpose, ref_id=ref_id)
    while True:
        if sub is not None and sub.status in ("finalized", "failed"):
            return sub
        if sub is None or sub.status == "expired":
            attempt = 1 if sub is None else sub.attempt + 1
            if attempt > MAX_ATTEMPTS:
                return None
            recent = await chain.latest_blockhash()
            tx = build_transaction(
                payer=payer, blockhash=recent.blockhash, memo=memo, to=to, lamports=lamports
            )
            sub = ChainSubmission(
                signature=str(tx.signatures[0]),
                purpose=purpose,
                ref_id=ref_id,
                attempt=attempt,
                signed_tx=base64.b64encode(bytes(tx)).decode(),
                blockhash=recent.blockhash,
                last_valid_block_height=recent.last_valid_block_height,
                chain=chain.label,
                status="signed",
                created_at=now,
                updated_at=now,
            )
            session.add(sub)
            session.commit()
            fault(f"{purpose}_signed")
        height = await chain.block_height()
        state = await chain.signature_state(sub.signature)
        if state in ("finalized", "failed"):
            _settle(session, sub, state, now)
            return sub
        if state == "absent" and height > sub.last_valid_block_height:
            # Expired and absent: this signature can never execute; a new one is safe.
            sub.status, sub.updated_at = "expired", now
            session.commit()
            logger.info("%s %s attempt %d expired unseen", purpose, ref_id, sub.attempt)
            continue
        await chain.send(base64.b64decode(sub.signed_tx))
        if sub.status == "signed":
            sub.status, sub.updated_at = "sent", now
            session.commit()
        fault(f"{purpose}_sent")
        for i in range(polls):
            state = await chain.signature_state(sub.signature)
            if state in ("finalized", "failed"):
                _settle(session, sub, state, now)
                return sub
            await chain.pause(0.5 * 2**i)
        return sub


def _settle(session: Session, sub: ChainSubmission, state: str, now: datetime) -> None:
    sub.status = state
    sub.updated_at = now
    if state == "failed":
        sub.error = "executed with an error on chain"
    session.flush()
