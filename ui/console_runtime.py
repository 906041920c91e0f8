"""Compose what the console and its API routes run: graphs, demo actions, background loop.

The chat, incident and billing graphs, the demo actions and the background loop (ingest,
incidents, audio alerts) share one runtime. Everything here wires settings, graphs and
domain functions together; the logic itself lives in `tools/` and `graphs/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage, HumanMessage
from sqlalchemy.orm import Session

from agents.models import make_chat_model
from agents.offline import is_offline
from graphs.billing import decide_payout_approval, settle_workloads
from graphs.chat import chat_graph, pending_approval, run_decision, run_turn, thread_messages
from graphs.checkpoint import chat_thread, open_checkpointer
from graphs.context import (
    CHAT_RECURSION_LIMIT,
    DEFAULT_ORG_ID,
    BillingContext,
    Context,
    new_worker_id,
)
from graphs.incident_watch import deliver_outbox, run_incidents
from graphs.settings import Settings
from graphs.wiring import make_alert_sink, make_money_services
from tools.incidents import alerts
from tools.incidents.detection import grid_with_overrides
from tools.incidents.ports import AlertSink, SpeechEngine
from tools.integrations.speech import make_speech_engine
from tools.money.settlement import unsettled_workloads
from ui import demo
from ui.services import Services

logger = logging.getLogger(__name__)
T = TypeVar("T")
CACHE_TTL_S = 1.0
"""How long read-heavy API answers (the dashboard) may be reused."""


def model_label(svc: Services) -> str:
    """Return who answers the chat: the Crusoe model name or the offline model."""
    if svc.settings.llm_api_key is None:
        return "offline model (deterministic, no API key)"
    return f"Crusoe · {svc.settings.llm_model}"


class ConsoleRuntime:
    """The long-lived parts of the console process; `start()` in the lifespan, `stop()` after."""

    def __init__(
        self,
        svc: Services,
        config: Settings,
        *,
        model: BaseChatModel | None = None,
        speech: SpeechEngine | None = None,
    ) -> None:
        self.svc = svc
        self.config = config
        self._model = model
        self._speech = speech
        self._alerts: AlertSink | None = None
        self._stack = contextlib.ExitStack()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._chat: Any = None
        self._saver: Any = None
        self._cache: dict[str, tuple[float, Any]] = {}
        self.last_pass: dict[str, Any] = {}
        self.last_error: str | None = None
        self.worker_id = new_worker_id()
        """This console's name in incident claims (unique per process)."""
        self.pass_seconds: float | None = None
        """How long the last completed background pass took (monotonic clock)."""
        self.passes = 0

    # -- life cycle -------------------------------------------------------------------------

    @property
    def model(self) -> BaseChatModel:
        """Return the chat model (built on first use; fails fast on a bad endpoint)."""
        if self._model is None:
            self._model = make_chat_model(
                self.svc.settings.model_endpoint(), clock=self.svc.clock, org_id=DEFAULT_ORG_ID
            )
        return self._model

    @property
    def speech(self) -> SpeechEngine:
        """Return the speech engine: ElevenLabs with a key, else offline espeak-ng."""
        if self._speech is None:
            key = self.svc.settings.elevenlabs_api_key
            self._speech = make_speech_engine(
                elevenlabs_api_key=key.get_secret_value() if key else None
            )
        return self._speech

    @property
    def alert_sink(self) -> AlertSink:
        """Return the alert sink (incident.io with a key, else local demo), built once."""
        if self._alerts is None:
            self._alerts = make_alert_sink(self.svc.settings)
            close = getattr(self._alerts, "close", None)
            if callable(close):
                self._stack.callback(close)
        return self._alerts

    @property
    def model_label(self) -> str:
        """Return who answers the chat."""
        return model_label(self.svc)

    @property
    def model_short(self) -> str:
        """Return the chat model's name for the dashboard card."""
        s = self.svc.settings
        return "offline model" if s.llm_api_key is None else s.llm_model.split("/")[-1]

    def start(self) -> None:
        """Open the checkpointer, build the graphs and start the background loop."""
        saver = self._stack.enter_context(open_checkpointer(self.svc.engine))
        self._chat = chat_graph(saver)
        self._saver = saver
        if self.config.loop_interval_s > 0:
            self._thread = threading.Thread(target=self._loop, name="tgtg-loop", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the background loop and close the checkpointer."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._stack.close()
        self.svc.close()

    def context(self, *, with_overrides: bool = False) -> Context:
        """Return the graph context; the chat reads the grid through stored spikes.

        The incident graph applies overrides itself, so its context gets the plain grid.
        """
        grid = self.svc.grid()
        if with_overrides:
            now = self.svc.clock.now()
            grid = self.read(lambda s: grid_with_overrides(session=s, grid=grid, now=now))
        return Context(
            model=self.model,
            sessions=self.svc.sessions,
            grid=grid,
            clock=self.svc.clock,
            weights=self.svc.weights,
            forecasts=self.svc.forecasts(),
            alerts=self.alert_sink,
            worker_id=self.worker_id,
            model_summaries=not is_offline(self.model),
            move_running_work=self.svc.settings.move_running_work,
        )

    def read(self, fn: Callable[[Session], T]) -> T:
        """Run a read in a fresh session."""
        with self.svc.sessions() as session:
            return fn(session)

    def cached(self, key: str, fn: Callable[[], T], ttl_s: float = CACHE_TTL_S) -> T:
        """Return `fn()`, reusing a result younger than `ttl_s` (writes here clear the cache)."""
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < ttl_s:
            return hit[1]
        value = fn()
        self._cache[key] = (now, value)
        return value

    def write(self, fn: Callable[[Session], T]) -> T:
        """Run a write in one transaction; correctness comes from the store's transactions."""
        self._cache.clear()
        with self.svc.sessions.begin() as session:
            result = fn(session)
        self._cache.clear()
        return result

    # -- chat -------------------------------------------------------------------------------

    def chat_turn(self, text: str, thread_id: str) -> Iterator[list[BaseMessage]]:
        """Run one chat turn; yield the turn's new messages so far after every graph step.

        While a streaming model writes an agent's answer, each new token is yielded too: the
        answer so far is the last message until the step ends and the full message replaces it.

        The graph runs in its own thread, so the caller may consume this generator from any
        thread, as Gradio does; each tool call writes in its own transaction.
        """
        if self._chat is None:
            raise RuntimeError("the console runtime is not started")
        updates: queue.Queue[list[BaseMessage] | BaseException | None] = queue.Queue()
        thread = threading.Thread(
            target=self._run_chat, args=(text, thread_id, updates), name="tgtg-chat", daemon=True
        )
        thread.start()
        while (item := updates.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
        thread.join()

    def _run_chat(
        self,
        text: str,
        thread_id: str,
        updates: queue.Queue[list[BaseMessage] | BaseException | None],
    ) -> None:
        config = {
            "configurable": {"thread_id": chat_thread(thread_id)},
            "recursion_limit": CHAT_RECURSION_LIMIT,
        }
        turn: list[BaseMessage] = []
        partial: AIMessageChunk | None = None  # the answer so far while a model streams it
        try:
            for namespace, mode, data in self._chat.stream(
                {"messages": [HumanMessage(text)]},
                config,
                context=self.context(with_overrides=True),
                stream_mode=["updates", "messages"],
                subgraphs=True,
            ):
                if mode == "messages":
                    chunk = data[0]
                    # Only an agent's answer text streams (not routing, not tool-call deltas).
                    if not namespace or not isinstance(chunk, AIMessageChunk):
                        continue
                    if chunk.tool_call_chunks or not chunk.text:
                        continue
                    partial = chunk if partial is None else partial + chunk
                    updates.put([*turn, partial])
                    continue
                for node, value in data.items():
                    # Agent subgraphs report their steps; their parent node repeats them.
                    if not namespace and node != "supervisor":
                        continue
                    messages = value.get("messages", []) if isinstance(value, dict) else []
                    turn.extend(m for m in messages if not isinstance(m, HumanMessage))
                partial = None
                updates.put(list(turn))
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            updates.put(exc)
        finally:
            updates.put(None)

    def _graph(self) -> Any:
        if self._chat is None:
            raise RuntimeError("the console runtime is not started")
        return self._chat

    def chat(self, text: str, thread_id: str) -> dict[str, Any]:
        """Run one chat turn to its end or to an approval request; return its summary."""
        return run_turn(self._graph(), self.context(with_overrides=True), text, thread_id=thread_id)

    def decide(
        self, thread_id: str, *, approve: bool, by: str, reason: str | None = None
    ) -> dict[str, Any]:
        """Approve or reject the write waiting on `thread_id`; return the turn's summary."""
        self._cache.clear()
        return run_decision(
            self._graph(),
            self.context(with_overrides=True),
            thread_id=thread_id,
            approve=approve,
            by=by,
            reason=reason,
        )

    def pending(self, thread_id: str) -> dict[str, Any] | None:
        """Return the write waiting for approval on `thread_id` ({tool, args, summary}), or None."""
        return pending_approval(self._graph(), thread_id)

    def history(self, thread_id: str) -> list[BaseMessage]:
        """Return the conversation's messages so far."""
        return thread_messages(self._graph(), thread_id)

    # -- background loop --------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(self.config.loop_interval_s):
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - kept running; shown on the dashboard
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.exception("background pass failed")

    def tick(self, *, ingest_hours: int = 2) -> dict[str, Any]:
        """Run one background pass: ingest, open and run incidents, speak new alerts."""
        started = time.monotonic()
        now = self.svc.clock.now()
        report = self.write(
            lambda s: demo.grid_cycle(session=s, grid=self.svc.grid(), now=now, hours=ingest_hours)
        )
        handled = self.run_incidents()
        spoken = self.speak_alerts()
        self.last_pass = {
            "at": now.isoformat(),
            "ingest": str(report),
            "handled": handled,
            "spoken": len(spoken),
        }
        self.last_error = None
        self.pass_seconds = time.monotonic() - started
        self.passes += 1
        return self.last_pass

    def run_incidents(self) -> list[str]:
        """Scan for anomalies, claim and run every open incident, deliver alerts; return ids.

        The alerts and model summaries are delivered outside the write lock: they hold no
        database transaction while waiting on the network or the model.
        """
        if self._saver is None:
            raise RuntimeError("the console runtime is not started")
        context = self.context()
        handled = run_incidents(context, self._saver)
        deliver_outbox(context)
        self._cache.clear()
        return handled

    def speak_alerts(self) -> list[alerts.AudioAlertView]:
        """Give new curtailment events and incidents their audio alert.

        The speech engine (ElevenLabs over the network) runs with no transaction open;
        `speak_new_alerts` commits around it.
        """
        now = self.svc.clock.now()
        self._cache.clear()
        with self.svc.sessions() as session:
            made = alerts.speak_new_alerts(
                session=session, engine=self.speech, data_dir=self.svc.settings.data_dir, now=now
            )
        self._cache.clear()
        return made

    # -- money ------------------------------------------------------------------------------

    def _billing_context(self) -> BillingContext:
        money = make_money_services(self.svc.settings, grid=self.svc.grid())
        return BillingContext(sessions=self.svc.sessions, money=money, clock=self.svc.clock)

    def complete_and_settle(self, workload_ids: list[str] | None = None) -> dict[str, Any]:
        """Complete routed/running work, then bill, pay and mint receipts in the billing graph."""
        now = self.svc.clock.now()
        with self.svc.sessions() as session:
            done = demo.complete_workloads(session=session, now=now, workload_ids=workload_ids)
            session.commit()
            todo = unsettled_workloads(session=session)
        context = self._billing_context()
        settled = asyncio.run(settle_workloads(todo, context=context, engine=self.svc.engine))
        return {"completed": done, "settled": settled}

    def decide_payout(self, payout_id: str, *, approve: bool, by: str) -> dict[str, Any]:
        """Approve or reject a payout awaiting approval, as `by` (same path as the API).

        Raises:
            NotFoundError: No payout has that id.
            ConflictError: The payout is not awaiting approval (already decided).
        """
        self._cache.clear()
        try:
            return asyncio.run(
                decide_payout_approval(
                    payout_id,
                    approve=approve,
                    by=by,
                    context=self._billing_context(),
                    engine=self.svc.engine,
                )
            )
        finally:
            self._cache.clear()
