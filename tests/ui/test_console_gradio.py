import httpx
from gradio_client import Client


def test_chat_over_gradio_client_streams_tool_steps_and_answers(live_console):
    client = Client(live_console.url + "/", auth=live_console.credentials, verbose=False)
    assert "/chat" in str(client.view_api(print_info=False, return_format="dict"))
    job = client.submit("Where should I run 4 H100 for 6 hours?", api_name="/chat")
    outputs = list(job)
    box, history = job.result()[:2]
    assert box == ""
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
