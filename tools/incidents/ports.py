"""What incident response needs from the outside: an alert sink and a speech engine.

The incidents domain declares these protocols and the alert event it sends;
`tools.integrations.incidentio` and `tools.integrations.speech` implement them, and the
composition roots wire them.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
import wave
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session


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

    def send(
        self, *, session: Session, event: AlertEventIn, now: datetime, revision: int = 0
    ) -> str:
        """Deliver `event` once per (key, status, revision): 'sent', 'demo', 'duplicate'."""
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
