"""Chat tab: talk to the broker through the supervisor graph, one thread per browser session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import gradio as gr

from ui.adapter import to_gradio
from ui.console_runtime import ConsoleRuntime
from ui.tabs import Refresh

EXAMPLES = [
    "Where should I run 4 H100 for 6 hours?",
    "Compare FR, DE and ES for 8 GPUs over 12 hours",
    "Show me the nodes",
]


def build(rt: ConsoleRuntime) -> list[Refresh]:
    """Build the chat tab."""
    gr.Markdown(f"**Answered by:** {rt.model_label}", elem_id="model-label")
    chatbot = gr.Chatbot(label="Broker", height=460, elem_id="chatbot", buttons=["copy"])
    thread = gr.State(None)
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

    def respond(
        message: str, history: list[dict[str, Any]] | None, thread_id: str | None
    ) -> Iterator[tuple[str, list[dict[str, Any]], str]]:
        thread_id = thread_id or uuid.uuid4().hex
        history = list(history or [])
        if not message.strip():
            yield "", history, thread_id
            return
        shown = [*history, {"role": "user", "content": message}]
        yield "", shown, thread_id
        for turn in rt.chat_turn(message, thread_id):
            yield "", shown + to_gradio(turn), thread_id

    box.submit(
        respond,
        [box, chatbot, thread],
        [box, chatbot, thread],
        api_name="chat",
        concurrency_limit=4,
    )
    new.click(lambda: ([], None), None, [chatbot, thread], api_visibility="private")
    return []
