import httpx
from gradio_client import Client


def test_chat_over_gradio_client_streams_tool_steps_and_answers(live_console):
    client = Client(live_console.url + "/", auth=live_console.credentials, verbose=False)
    assert "/chat" in str(client.view_api(print_info=False, return_format="dict"))
    job = client.submit("Where should I run 4 H100 for 6 hours?", api_name="/chat")
    outputs = list(job)
    box, history = job.result()[:2]
    # The input box is cleared when the question is taken; later steps leave it alone, so
    # what an operator types meanwhile is not wiped.
    assert outputs[0][0] == ""
    assert all(step[0] == {"__type__": "update"} for step in outputs[1:]) and box == outputs[-1][0]
    assert len(outputs) >= 2  # the question first, then the steps as they arrive
    assert history[0]["role"] == "user"
    assert "Where should I run 4 H100" in str(history[0]["content"])
    steps = [m for m in history if (m.get("metadata") or {}).get("title")]
    assert steps and steps[0]["metadata"]["title"] == "Used tool: recommend_placement"
    assert steps[0]["metadata"]["status"] == "done"
    answer = history[-1]
    assert answer["role"] == "assistant" and "[offline model]" in str(answer["content"])
    assert "fr-par-h100" in str(answer["content"])


def test_the_console_and_the_api_share_one_server(live_console):
    page = httpx.get(live_console.url + "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert httpx.get(live_console.url + "/api/v1/health").json()["status"] == "ok"
    assert httpx.get(live_console.url + "/docs").status_code == 200
    bundle = httpx.get(live_console.url + "/docs-assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and "javascript" in bundle.headers["content-type"]
    paths = httpx.get(live_console.url + "/openapi.json").json()["paths"]
    assert "/api/v1/analytics/dashboard" in paths and "/api/v1/demo/flow/{step}" in paths


def test_payouts_waiting_for_approval_are_decided_in_the_console(console_svc):
    from tests.ui.conftest import AUTH, LiveServer
    from ui.app import create_server

    settings = console_svc.settings.model_copy(update={"payout_approval_threshold_minor": 10})
    svc = console_svc.__class__(settings=settings, clock=console_svc.clock)
    with LiveServer(create_server(svc)) as server:
        api = server.url + "/api/v1"
        for _ in range(2):
            job = {"org_id": "acme-ai", "name": "render", "gpu_count": 1, "duration_hours": 3}
            made = httpx.post(
                f"{api}/workloads", json={**job, "gpu_model": "RTX4090"}, headers=AUTH
            )
            routed = httpx.put(f"{api}/workloads/{made.json()['id']}/route", headers=AUTH)
            assert routed.is_success
        httpx.post(f"{api}/demo/simulate/complete", headers=AUTH, timeout=60)
        waiting = httpx.get(f"{api}/payouts", params={"status": "awaiting_approval"}).json()
        first, second = sorted(p["id"] for p in waiting)

        client = Client(server.url + "/", auth=server.credentials, verbose=False)
        done, head, table, _ = client.predict(first, api_name="/payout_approve")
        assert f"`{first}` approved by operator: status **posted**" in done
        assert "1 payout(s) waiting" in head
        assert [row[0] for row in table["data"]] == [second]
        done = client.predict(second, api_name="/payout_reject")[0]
        assert "rejected by operator: status **rejected**" in done
        again = client.submit(first, api_name="/payout_approve")
        try:
            again.result()
            raise AssertionError("approving a posted payout again succeeded")
        except Exception as exc:  # noqa: BLE001 - gradio_client raises AppError for gr.Error
            assert "'posted'" in str(exc)

        payouts = {p["id"]: p for p in httpx.get(f"{api}/payouts").json()}
        assert payouts[first]["status"] == "posted" and payouts[first]["approved_by"] == "operator"
        assert payouts[second]["status"] == "rejected"
        assert payouts[second]["approved_by"] == "operator"  # who decided, either way
