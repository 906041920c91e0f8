"""The money domain's `PaymentRail` on Solana: a chain (local LiteSVM or RPC) and the payer key."""

from __future__ import annotations

import base64
from datetime import datetime

from solders.keypair import Keypair
from solders.transaction import VersionedTransaction
from sqlalchemy.orm import Session

from store.ledger import ChainSubmission
from tools.integrations.solana.chain import Chain, is_validly_signed, memo_of, parse_pubkey
from tools.integrations.solana.outbox import submit
from tools.money.ports import FaultHook, Purpose, SignedMemo, no_fault


class SolanaRail:
    """Pay and anchor receipts on `chain`, signing with `payer`."""

    def __init__(self, chain: Chain, payer: Keypair) -> None:
        """Wrap a chain and the hot-wallet key that signs every transfer and memo."""
        self.chain = chain
        self.payer = payer
        self.label = chain.label

    def check_address(self, address: str) -> None:
        """Raise `InvalidInputError` unless `address` is a base58 Solana public key."""
        parse_pubkey(address)

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
        """Sign, persist, send and confirm through the outbox (at most one transfer lands)."""
        return await submit(
            session=session,
            chain=self.chain,
            payer=self.payer,
            purpose=purpose,
            ref_id=ref_id,
            memo=memo,
            now=now,
            to=to,
            lamports=lamports,
            fault=fault,
        )

    def read_signed(self, submission: ChainSubmission) -> SignedMemo:
        """Decode the stored transaction: its memo and whether its signature is the stored one."""
        tx = VersionedTransaction.from_bytes(base64.b64decode(submission.signed_tx))
        valid = is_validly_signed(tx) and str(tx.signatures[0]) == submission.signature
        return SignedMemo(memo=memo_of(tx), signature_valid=valid)

    async def is_finalized(self, signature: str) -> bool:
        """Return whether the chain reports `signature` finalized."""
        return await self.chain.signature_state(signature) == "finalized"
