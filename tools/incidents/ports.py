"""What incident response needs from the outside: an alert sink, a summarizer, a speech engine.

The incidents domain declares these protocols and the alert event it sends;
`tools.integrations.incidentio` and `tools.integrations.speech` implement them, the incident
graph adapts its chat model to `IncidentSummarizer`, and the composition roots wire them. None
of them is ever called while a database transaction of ours is open (see `outbox`).
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
import wave
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field


class AlertDeliveryError(RuntimeError):
    """The alert service refused the event or stayed unavailable after retries."""


class AlertEventIn(BaseModel):
    """One alert event (incident.io's HTTP alert source shape)."""

    title: str = Field(max_length=300)
    status: Literal["firing", "resolved"]
    deduplication_key: str
    description: str = ""
    source_url: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class AlertSink(Protocol):
    """Where incident alerts go."""

    def deliver(self, event: AlertEventIn) -> str:
        """Deliver one event (network only, no database work); return 'sent' or 'demo'.

        Raises:
            AlertDeliveryError: Refused, or unavailable after the sink's own retries.
        """
        ...


class SummaryUnavailableError(RuntimeError):
    """The summarizer could not write a summary now (model slow, down or refusing)."""


class SummaryFacts(BaseModel):
    """What a summary may say: the incident and its recorded transitions and reroutes."""

    incident_id: str
    zone: str
    trigger: str
    opened_at: str
    transitions: str
    """One line per transition: `- <time> <from> -> <to>: <reason>`."""
    reroutes: str
    """One line per reroute: `- <workload>: <outcome> <from> -> <to>`, or `- none`."""


class IncidentSummarizer(Protocol):
    """Writes an operator summary of an incident from its facts (a model, when configured)."""

    def __call__(self, facts: SummaryFacts) -> str:
        """Return the summary text.

        Raises:
            SummaryUnavailableError: No summary now; the template stays and it is tried later.
        """
        ...


class SpeechError(RuntimeError):
    """Speech could not be produced; the message says which engine and why."""


class SpeechEngine(Protocol):
    """Something that speaks text into a WAV."""

    @property
    def name(self) -> str:
        """Return the engine name stored with each alert ('elevenlabs' or 'espeak-ng')."""
        ...

    @property
    def voice(self) -> str:
        """Return the voice identifier (part of the cache key)."""
        ...

    def synthesize(self, text: str) -> bytes:
        """Return a 16-bit mono WAV of `text`."""
        ...


def wav_stats(data: bytes) -> tuple[float, float]:
    """Return (duration in seconds, RMS amplitude) of a 16-bit mono WAV."""
    with wave.open(io.BytesIO(data), "rb") as wav:
        frames = wav.readframes(wav.getnframes())
        rate = wav.getframerate()
    count = len(frames) // 2
    if count == 0:
        return 0.0, 0.0
    samples = struct.unpack(f"<{count}h", frames[: count * 2])
    rms = math.sqrt(sum(s * s for s in samples) / count)
    return count / rate, rms


def cache_key(engine: SpeechEngine, text: str) -> str:
    """Return the hash that names an alert's audio: engine, voice and text."""
    return hashlib.sha256(f"{engine.name}\0{engine.voice}\0{text}".encode()).hexdigest()
