"""The money routes under /api/v1: Stripe webhook, ledger balance, payouts, receipts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from graphs.billing import decide_payout_approval
from graphs.context import BillingContext
from graphs.wiring import make_money_services, make_rail
from store import ledger
from tools.integrations.stripe import WebhookRejectedError, WebhookResult, apply_webhook
from tools.money.payouts import PayoutView, list_payouts
from tools.money.receipts import ReceiptVerification, verify_receipt
from ui.api_input import MAX_ID_CHARS
from ui.services import Services

logger = logging.getLogger(__name__)
PayoutId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class PayoutDecisionIn(BaseModel):
    """Who decides a payout (stored as its approver)."""

    model_config = ConfigDict(extra="forbid")

    by: str = Field(default="api", min_length=1, max_length=200, pattern=r"\S")


def register(app: FastAPI, svc: Services, require_key: Callable[..., Any]) -> None:
    """Add the money routes to `app` (reads are open like the rest of /api/v1)."""
    router = APIRouter(prefix="/api/v1", tags=["money"])

    @router.post("/stripe/webhook", response_model=WebhookResult)
    async def stripe_webhook(
        request: Request,
        stripe_signature: Annotated[
            str | None, Header(alias="Stripe-Signature", max_length=4096)
        ] = None,
    ) -> WebhookResult:
        """Verify a Stripe delivery (raw body, signature, 300 s tolerance); apply it once."""
        secret = svc.settings.stripe_webhook_secret
        if secret is None:
            raise HTTPException(503, "webhooks are off: set TGTG_STRIPE_WEBHOOK_SECRET")
        payload = await request.body()
        with svc.sessions() as session:
            try:
                result = apply_webhook(
                    session=session,
                    payload=payload,
                    signature_header=stripe_signature,
                    secret=secret.get_secret_value(),
                    now=svc.clock.now(),
                )
                session.commit()
            except WebhookRejectedError as exc:
                logger.warning("stripe webhook rejected: %s", exc)
                raise HTTPException(400, str(exc)) from None
            except IntegrityError:
                session.rollback()  # a concurrent delivery of the same event won the race
                return apply_webhook(
                    session=session,
                    payload=payload,
                    signature_header=stripe_signature,
                    secret=secret.get_secret_value(),
                    now=svc.clock.now(),
                )
        return result

    @router.get("/ledger/balance")
    def ledger_balance() -> dict[str, Any]:
        """Return the trial balance (zero when sound) and every account's balance."""
        with svc.sessions() as session:
            return dict(ledger.trial_balance(session=session))

    @router.get("/payouts", response_model=list[PayoutView])
    def payouts(
        status: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    ) -> list[PayoutView]:
        """List payout intents, newest first."""
        with svc.sessions() as session:
            return list_payouts(session=session, status=status)

    @router.get(
        "/receipts/{receipt_id}/verify",
        response_model=ReceiptVerification,
        dependencies=[Depends(require_key)],
    )
    async def receipt_verify(
        receipt_id: Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)],
    ) -> ReceiptVerification:
        """Verify a carbon receipt against its document, signed memo and the chain."""
        rail = make_rail(svc.settings)
        with svc.sessions() as session:
            return await verify_receipt(session=session, rail=rail, receipt_id=receipt_id)

    async def decide(payout_id: str, *, approve: bool, by: str) -> PayoutView:
        money = make_money_services(svc.settings, grid=svc.grid())
        context = BillingContext(sessions=svc.sessions, money=money, clock=svc.clock)
        view = await decide_payout_approval(
            payout_id, approve=approve, by=by, context=context, engine=svc.engine
        )
        return PayoutView.model_validate(view)

    @router.post(
        "/payouts/{payout_id}/approve",
        response_model=PayoutView,
        dependencies=[Depends(require_key)],
    )
    async def approve_payout(
        payout_id: PayoutId, body: PayoutDecisionIn | None = None
    ) -> PayoutView:
        """Approve a payout that awaits approval; it is sent through the payout policy."""
        return await decide(payout_id, approve=True, by=(body or PayoutDecisionIn()).by)

    @router.post(
        "/payouts/{payout_id}/reject",
        response_model=PayoutView,
        dependencies=[Depends(require_key)],
    )
    async def reject_payout(
        payout_id: PayoutId, body: PayoutDecisionIn | None = None
    ) -> PayoutView:
        """Reject a payout that awaits approval; nothing is paid."""
        return await decide(payout_id, approve=False, by=(body or PayoutDecisionIn()).by)

    app.include_router(router)
