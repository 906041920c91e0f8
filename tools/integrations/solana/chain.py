"""Talk to Solana: an in-process LiteSVM "local chain" by default, or an RPC node via AsyncClient.

Both implement `Chain`, so payouts and receipts run the same code either way. The local chain
keeps a journal (signature, signed bytes, result, balances) under the data directory, so a later
process still knows which signatures executed and what the balances are; its blockhashes are
fresh per process, so a transaction signed in an earlier process can never land twice.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from solders.account import Account
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata

from tools.errors import InvalidInputError

if TYPE_CHECKING:
    from solana.rpc.async_api import AsyncClient

logger = logging.getLogger(__name__)

MEMO_PROGRAM_ID = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
LOCAL_CHAIN_LABEL = "local chain"
BLOCKHASH_VALID_BLOCKS = 150
LOCAL_PAYER_FUNDING_LAMPORTS = 1_000 * 1_000_000_000

SigState = Literal["finalized", "failed", "pending", "absent"]


@dataclass(frozen=True)
class RecentBlockhash:
    """A blockhash and the last block height at which transactions using it can land."""

    blockhash: str
    last_valid_block_height: int


class Chain(Protocol):
    """What payouts and receipts need from a Solana cluster."""

    label: str

    async def latest_blockhash(self) -> RecentBlockhash:
        """Return a fresh blockhash (finalized commitment) and its last valid height."""
        ...

    async def block_height(self) -> int:
        """Return the current block height."""
        ...

    async def send(self, raw: bytes) -> None:
        """Broadcast signed bytes without preflight; rebroadcasting the same bytes is safe."""
        ...

    async def signature_state(self, signature: str) -> SigState:
        """Return finalized, failed (executed with an error), pending, or absent."""
        ...

    async def balance(self, address: str) -> int:
        """Return the lamports of an address."""
        ...

    async def pause(self, seconds: float) -> None:
        """Wait before polling a signature again."""
        ...


def parse_pubkey(address: str) -> Pubkey:
    """Parse a base58 public key or raise InvalidInputError naming it."""
    try:
        return Pubkey.from_string(address)
    except ValueError as exc:
        raise InvalidInputError(f"wallet address {address!r} is not a Solana public key") from exc


def build_transaction(
    *,
    payer: Keypair,
    blockhash: str,
    memo: str,
    to: str | None = None,
    lamports: int = 0,
) -> VersionedTransaction:
    """Build and sign a v0 transaction: an optional transfer plus a memo signed by the payer."""
    ixs = []
    if to is not None:
        if type(lamports) is not int or lamports <= 0:
            raise InvalidInputError(f"lamports {lamports!r}: give a positive integer")
        ixs.append(
            transfer(
                TransferParams(
                    from_pubkey=payer.pubkey(), to_pubkey=parse_pubkey(to), lamports=lamports
                )
            )
        )
    ixs.append(
        Instruction(
            MEMO_PROGRAM_ID,
            memo.encode(),
            [AccountMeta(payer.pubkey(), is_signer=True, is_writable=False)],
        )
    )
    message = MessageV0.try_compile(payer.pubkey(), ixs, [], Hash.from_string(blockhash))
    return VersionedTransaction(message, [payer])


def memo_of(tx: VersionedTransaction) -> str | None:
    """Return the memo text carried by a transaction, if any."""
    keys = tx.message.account_keys
    for ix in tx.message.instructions:
        if keys[ix.program_id_index] == MEMO_PROGRAM_ID:
            return bytes(ix.data).decode()
    return None


def is_validly_signed(tx: VersionedTransaction) -> bool:
    """Return True when every signature of the transaction verifies against its message."""
    return all(tx.verify_with_results())


def demo_wallet(owner_id: str) -> str:
    """Return the deterministic demo Solana wallet (base58 public key) of a gamer."""
    seed = hashlib.sha256(f"tgtg-demo-wallet:{owner_id}".encode()).digest()
    return str(Keypair.from_seed(seed).pubkey())


def load_or_create_keypair(path: Path) -> Keypair:
    """Load a keypair file (Solana CLI JSON: 64 byte values) or create one there (mode 0600)."""
    if path.exists():
        return Keypair.from_bytes(bytes(json.loads(path.read_text())))
    path.parent.mkdir(parents=True, exist_ok=True)
    kp = Keypair()
    path.write_text(json.dumps(list(bytes(kp))))
    path.chmod(0o600)
    return kp


def keypair_from_secret(secret: str) -> Keypair:
    """Parse a payer secret given as base58 or as a JSON list of 64 byte values."""
    text = secret.strip()
    try:
        if text.startswith("["):
            return Keypair.from_bytes(bytes(json.loads(text)))
        return Keypair.from_base58_string(text)
    except ValueError as exc:
        raise InvalidInputError(
            "solana payer secret is neither base58 nor a JSON byte list"
        ) from exc


class LocalChain:
    """A real in-process SVM (LiteSVM) with a journal that survives the process."""

    label = LOCAL_CHAIN_LABEL

    def __init__(self, *, payer: Keypair, journal: Path | None = None) -> None:
        """Start the SVM, restore journalled balances and fund the payer when it is new.

        Args:
            payer: The hot-wallet keypair paying transfers and fees.
            journal: JSON-lines file of executed transactions; None keeps state in memory only.
        """
        self.svm = LiteSVM()
        self._journal = journal
        self._known: dict[str, SigState] = {}
        self.expires = 0
        balances: dict[str, int] = {}
        if journal is not None and journal.exists():
            for line in journal.read_text().splitlines():
                row = json.loads(line)
                self.expires = max(self.expires, row["expires"])
                if row.get("signature"):
                    self._known[row["signature"]] = row["state"]
                    balances.update(row["balances"])
        for address, lamports in balances.items():
            self.svm.set_account(
                Pubkey.from_string(address),
                Account(lamports=lamports, data=b"", owner=SYSTEM_PROGRAM_ID, executable=False),
            )
        # LiteSVM's blockhashes are a deterministic chain: move past every one an earlier
        # process may have signed with, so old signed bytes can never land here.
        for _ in range(self.expires):
            self.svm.expire_blockhash()
        if journal is not None:
            self.expire_blockhash()
        if not self.svm.get_balance(payer.pubkey()):
            self.svm.airdrop(payer.pubkey(), LOCAL_PAYER_FUNDING_LAMPORTS)

    @property
    def height(self) -> int:
        """Return the local block height: each blockhash expiry moves it 151 blocks on."""
        return 1_000 + self.expires * (BLOCKHASH_VALID_BLOCKS + 1)

    async def latest_blockhash(self) -> RecentBlockhash:
        """Return the SVM's current blockhash, valid for 150 local blocks."""
        return RecentBlockhash(
            str(self.svm.latest_blockhash()), self.height + BLOCKHASH_VALID_BLOCKS
        )

    async def block_height(self) -> int:
        """Return the local block height (advanced by `expire_blockhash`)."""
        return self.height

    def expire_blockhash(self) -> None:
        """Move past the validity of every blockhash handed out so far."""
        self.svm.expire_blockhash()
        self.expires += 1
        self._append({"expires": self.expires})

    async def send(self, raw: bytes) -> None:
        """Execute the transaction; duplicates and unknown blockhashes are dropped, as on chain."""
        tx = VersionedTransaction.from_bytes(raw)
        sig = str(tx.signatures[0])
        if sig in self._known:
            return
        result = self.svm.send_transaction(tx)
        if isinstance(result, FailedTransactionMetadata):
            err = str(result.err())
            if "AlreadyProcessed" in err or "BlockhashNotFound" in err:
                logger.info("local chain dropped %s: %s", sig[:12], err)
                return
            state: SigState = "failed"
        else:
            state = "finalized"
        self._known[sig] = state
        self._record(sig, state, raw, tx)

    def _record(self, sig: str, state: SigState, raw: bytes, tx: VersionedTransaction) -> None:
        if self._journal is None:
            return
        balances = {
            str(k): self.svm.get_balance(k) or 0
            for k in tx.message.account_keys
            if (account := self.svm.get_account(k)) is not None and not account.executable
        }
        self._append(
            {
                "expires": self.expires,
                "signature": sig,
                "state": state,
                "tx": base64.b64encode(raw).decode(),
                "balances": balances,
            }
        )

    def _append(self, row: dict[str, object]) -> None:
        if self._journal is None:
            return
        self._journal.parent.mkdir(parents=True, exist_ok=True)
        with self._journal.open("a") as fh:
            fh.write(json.dumps(row) + "\n")

    async def signature_state(self, signature: str) -> SigState:
        """Return the state of a signature (LiteSVM finalizes on execution)."""
        return self._known.get(signature, "absent")

    async def balance(self, address: str) -> int:
        """Return the lamports of `address` on the local chain."""
        return self.svm.get_balance(parse_pubkey(address)) or 0

    async def pause(self, seconds: float) -> None:
        """Return at once: nothing on the local chain changes by waiting."""


class RpcChain:
    """A Solana cluster behind JSON-RPC, through solana-py's AsyncClient."""

    def __init__(self, client: AsyncClient, *, label: str | None = None) -> None:
        """Wrap an `AsyncClient` (finalized commitment is requested explicitly per call)."""
        self._client = client
        self.label = label or "solana rpc"

    async def latest_blockhash(self) -> RecentBlockhash:
        """Return the finalized blockhash and its last valid block height."""
        from solana.rpc.commitment import Finalized

        resp = await self._client.get_latest_blockhash(Finalized)
        return RecentBlockhash(str(resp.value.blockhash), int(resp.value.last_valid_block_height))

    async def block_height(self) -> int:
        """Return the finalized block height."""
        from solana.rpc.commitment import Finalized

        return int((await self._client.get_block_height(Finalized)).value)

    async def send(self, raw: bytes) -> None:
        """Broadcast without preflight and without RPC-side retries (we rebroadcast ourselves)."""
        from solana.rpc.models import TxOpts

        opts = TxOpts(skip_preflight=True, skip_confirmation=True, max_retries=0)
        await self._client.send_raw_transaction(raw, opts)

    async def signature_state(self, signature: str) -> SigState:
        """Ask for the signature's status, searching the transaction history."""
        resp = await self._client.get_signature_statuses(
            [Signature.from_string(signature)], search_transaction_history=True
        )
        status = resp.value[0]
        if status is None:
            return "absent"
        if status.err is not None:
            return "failed"
        level = str(status.confirmation_status or "")
        return "finalized" if level.endswith("Finalized") else "pending"

    async def balance(self, address: str) -> int:
        """Return the finalized balance of `address`."""
        from solana.rpc.commitment import Finalized

        resp = await self._client.get_balance(parse_pubkey(address), Finalized)
        return int(resp.value)

    async def pause(self, seconds: float) -> None:
        """Sleep: the cluster needs time to finalize."""
        await asyncio.sleep(seconds)
