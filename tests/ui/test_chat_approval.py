"""Approvals in the API and the console: book by chat, approve once, reject writes nothing.

Each test starts from a fresh database (the console fixtures); the store is checked directly.
"""

import pytest
from fastapi.testclient import TestClient
from langchain_core.messages import AIMessage

from store import repo
from store.approvals import list_approvals
from ui.adapter import proposal_markdown, to_gradio
from ui.api import create_app

AUTH = {"X-API-Key": "console-test-key"}
ASK = "Where should I run a 4xH100 fine-tune for 6 hours, EU only?"


@pytest.fixture
def client(console_svc):
    with TestClient(create_app(console_svc)) as c:
        yield c


def _workloads(svc):
    with svc.sessions() as s:
        return list(repo.list_workloads(session=s))


def test_book_by_chat_over_the_api(client, console_svc):
    assert client.post("/api/v1/chat/t1", json={"text": ASK}).status_code == 401
    rec = client.post("/api/v1/chat/t1", json={"text": ASK}, headers=AUTH).json()
    assert rec["tool_calls"] == ["recommend_placement"] and rec["pending_approval"] is None
    asked = client.post(
        "/api/v1/chat/t1", json={"text": "yes, go ahead and book it"}, headers=AUTH
    ).json()
    pending = asked["pending_approval"]
    assert pending["tool"] == "route_workload" and pending["summary"]["node_id"] == rec["node"]
    assert client.get("/api/v1/chat/t1/pending").json() == pending
    assert _workloads(console_svc) == []

    assert client.post("/api/v1/chat/t1/approve").status_code == 401
    done = client.post("/api/v1/chat/t1/approve", json={"by": "ana"}, headers=AUTH).json()
    assert done["written"] is True and done["decision"]["by"] == "ana"
    (workload,) = _workloads(console_svc)
    assert done["workload"]["id"] == workload.id and workload.node_id == rec["node"]
    again = client.post("/api/v1/chat/t1/approve", headers=AUTH).json()
    assert again["already_decided"] is True and again["workload"]["id"] == workload.id
    assert len(_workloads(console_svc)) == 1
    late = client.post("/api/v1/chat/t1/reject", json={"reason": "no"}, headers=AUTH)
    assert late.status_code == 409 and "already approved by ana" in late.text

    client.post("/api/v1/chat/t2", json={"text": ASK}, headers=AUTH)
    client.post("/api/v1/chat/t2", json={"text": "book it"}, headers=AUTH)
    no = client.post(
        "/api/v1/chat/t2/reject", json={"by": "ben", "reason": "wait until tonight"}, headers=AUTH
    ).json()
    assert no["written"] is False and "wait until tonight" in no["answer"]
    assert no["decision"]["approve"] is False and len(_workloads(console_svc)) == 1
    with console_svc.sessions() as s:
        decided = [(a.thread_id, a.approved, a.decided_by) for a in list_approvals(session=s)]
    assert decided == [("chat:t1", True, "ana"), ("chat:t2", False, "ben")]


def test_chat_routes_validate_their_input(client):
    empty = client.post("/api/v1/chat/t1", json={"text": "  "}, headers=AUTH)
    assert empty.status_code == 422
    bad = client.post("/api/v1/chat/bad%20id", json={"text": "hi"}, headers=AUTH)
    assert bad.status_code == 422
    extra = client.post("/api/v1/chat/t1/approve", json={"by": "a", "x": 1}, headers=AUTH)
    assert extra.status_code == 422 and "x" in extra.text
    nothing = client.post("/api/v1/chat/none/approve", headers=AUTH)
    assert nothing.status_code == 404 and "nothing is waiting for approval" in nothing.text


def test_book_by_chat_in_the_console(runtime):
    rec = list(runtime.chat_turn(ASK, "c-1"))[-1]
    assert rec[0].tool_calls[0]["name"] == "recommend_placement" and runtime.pending("c-1") is None
    streamed = list(runtime.chat_turn("yes, go ahead and book it", "c-1"))[-1]
    assert streamed[-1].tool_calls[0]["name"] == "route_workload"
    pending = runtime.pending("c-1")
    shown = proposal_markdown(pending)
    assert "Approval needed: `route_workload`" in shown and pending["summary"]["node_id"] in shown
    assert "cost: **" in shown and "kg CO2" in shown
    assert runtime.read(lambda s: repo.list_workloads(session=s)) == []

    done = runtime.decide("c-1", approve=True, by="console-user")
    rows = runtime.read(lambda s: repo.list_workloads(session=s))
    assert done["written"] is True and [w.node_id for w in rows] == [pending["summary"]["node_id"]]
    again = runtime.decide("c-1", approve=True, by="console-user")
    assert (
        again["already_decided"]
        and len(runtime.read(lambda s: repo.list_workloads(session=s))) == 1
    )
    history = to_gradio(runtime.history("c-1"))
    assert history[-1]["role"] == "assistant" and "Routed workload" in history[-1]["content"]
    assert proposal_markdown(runtime.pending("c-1")) == ""

    list(runtime.chat_turn(ASK, "c-2"))
    list(runtime.chat_turn("book it", "c-2"))
    runtime.decide("c-2", approve=False, by="console-user", reason="not today")
    assert len(runtime.read(lambda s: repo.list_workloads(session=s))) == 1
    last = runtime.history("c-2")[-1]
    assert isinstance(last, AIMessage) and "not today" in last.content


def test_payouts_are_approved_or_rejected_over_the_api(console_svc):
    svc = console_svc.__class__(
        settings=console_svc.settings.model_copy(update={"payout_approval_threshold_minor": 10}),
        clock=console_svc.clock,
    )
    with TestClient(create_app(svc)) as client:
        for _ in range(2):
            job = {"org_id": "acme-ai", "name": "render", "gpu_count": 1, "duration_hours": 3}
            made = client.post(
                "/api/v1/workloads", json={**job, "gpu_model": "RTX4090"}, headers=AUTH
            )
            assert client.put(
                f"/api/v1/workloads/{made.json()['id']}/route", headers=AUTH
            ).is_success
        client.post("/api/v1/demo/simulate/complete", headers=AUTH)
        waiting = client.get("/api/v1/payouts", params={"status": "awaiting_approval"}).json()
        assert len(waiting) == 2
        first, second = (p["id"] for p in waiting)
        assert client.post(f"/api/v1/payouts/{first}/approve").status_code == 401
        paid = client.post(f"/api/v1/payouts/{first}/approve", json={"by": "ana"}, headers=AUTH)
        assert paid.json()["status"] == "posted" and paid.json()["approved_by"] == "ana"
        no = client.post(f"/api/v1/payouts/{second}/reject", headers=AUTH)
        assert no.json()["status"] == "rejected"
        twice = client.post(f"/api/v1/payouts/{first}/approve", headers=AUTH)
        assert twice.status_code == 409 and "'posted'" in twice.text
        missing = client.post("/api/v1/payouts/po_nope/approve", headers=AUTH)
        assert missing.status_code == 404 and "po_nope" in missing.text
