"""Chat tab: talk to the agents through the supervisor graph, one thread per browser session.

A turn that proposes a write shows the proposal (a summary computed by code) with Approve /
Reject buttons under it; nothing is written until Approve.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import gradio as gr

from tools.errors import DomainError
from ui.adapter import proposal_markdown, to_gradio
from ui.console_runtime import ConsoleRuntime
from ui.tabs import Refresh

EXAMPLES = [
    "Where should I run 4 H100 for 6 hours?",
    "Compare FR, DE and ES for 8 GPUs over 12 hours",
    "Show me the nodes",
]


def _proposal(rt: ConsoleRuntime, thread_id: str | None) -> tuple[Any, Any]:
    text = proposal_markdown(rt.pending(thread_id)) if thread_id else ""
    return gr.update(value=text, visible=bool(text)), gr.update(visible=bool(text))


def build(rt: ConsoleRuntime) -> list[Refresh]:
    """Build the chat tab."""
    gr.Markdown(f"**Answered by:** {rt.model_label}", elem_id="model-label")
    chatbot = gr.Chatbot(label="Broker", height=460, elem_id="chatbot", buttons=["copy"])
    thread = gr.State(None)
    proposal = gr.Markdown(visible=False, elem_id="chat-proposal")
    with gr.Row(visible=False, elem_id="chat-decision") as decision:
        reason = gr.Textbox(
            placeholder="Reason for a rejection (optional)",
            show_label=False,
            scale=6,
            elem_id="chat-reason",
        )
        approve = gr.Button("Approve", variant="primary", scale=1, elem_id="chat-approve")
        reject = gr.Button("Reject", variant="stop", scale=1, elem_id="chat-reject")
    with gr.Row():
        box = gr.Textbox(
            placeholder=EXAMPLES[0],
            show_label=False,
            scale=8,
            elem_id="chat-input",
            submit_btn=True,
        )
        new = gr.Button("New conversation", scale=1, elem_id="chat-new")
    gr.Examples(EXAMPLES, inputs=box)
    hidden = (gr.update(visible=False), gr.update(visible=False))

    def respond(
        message: str, history: list[dict[str, Any]] | None, thread_id: str | None
    ) -> Iterator[tuple[Any, ...]]:
        thread_id = thread_id or uuid.uuid4().hex
        history = list(history or [])
        if not message.strip():
            yield "", history, thread_id, *_proposal(rt, thread_id)
            return
        shown = [*history, {"role": "user", "content": message}]
        yield "", shown, thread_id, *hidden
        # Later steps leave the input box alone: an operator may already be typing the next
        # message while this answer streams in.
        keep = gr.update()
        for turn in rt.chat_turn(message, thread_id):
            yield keep, shown + to_gradio(turn), thread_id, *hidden
        yield keep, to_gradio(rt.history(thread_id)), thread_id, *_proposal(rt, thread_id)

    def decider(approved: bool) -> Any:
        def decide(thread_id: str | None, why: str, request: gr.Request) -> tuple[Any, ...]:
            if not thread_id:
                raise gr.Error("nothing is waiting for approval: start a conversation first")
            by = getattr(request, "username", None) or "console"
            try:
                rt.decide(thread_id, approve=approved, by=by, reason=why.strip() or None)
            except DomainError as exc:
                raise gr.Error(str(exc)) from None
            return to_gradio(rt.history(thread_id)), "", *_proposal(rt, thread_id)

        return decide

    outputs = [box, chatbot, thread, proposal, decision]
    box.submit(respond, [box, chatbot, thread], outputs, api_name="chat", concurrency_limit=4)
    decided = [chatbot, reason, proposal, decision]
    approve.click(decider(True), [thread, reason], decided, api_name="chat_approve")
    reject.click(decider(False), [thread, reason], decided, api_name="chat_reject")
    new.click(
        lambda: ([], None, *hidden),
        None,
        [chatbot, thread, proposal, decision],
        api_visibility="private",
    )
    return []
