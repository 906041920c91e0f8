"""Alerts operators see and hear: incidents opened for anomalies, spoken curtailment alerts.

Spoken text always comes from the fixed templates below, filled with zone names from the zone
table, times and numbers; never with free text from a grid source, a model or a user. Audio is
cached by a hash of engine, voice and text, so the same alert is synthesised once. Speech is
synthesised with no database transaction open (ElevenLabs is a network service); an alert row
is stored only once its WAV exists, in a short transaction of its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store import audio_repo, incident_repo
from store.audio_models import AudioAlert
from store.incident_models import Incident
from store.models import CurtailmentEvent
from tools.errors import InvalidInputError, NotFoundError
from tools.grid import ZONES
from tools.incidents.ports import SpeechEngine, SpeechError, cache_key, wav_stats
from tools.incidents.response import reroute_view

logger = logging.getLogger(__name__)

AlertKind = Literal["curtailment", "incident"]
AUDIO_DIR = "audio"
RECENT = timedelta(hours=24)
"""Curtailment events that ended longer ago than this get no new audio."""
MAX_NEW_PER_PASS = 12

_TRIGGER_WORDS = {
    "carbon_spike": "carbon intensity spike",
    "price_spike": "power price spike",
    "node_offline": "node offline",
    "surplus": "renewable surplus",
}


class AudioAlertView(BaseModel):
    """A stored spoken alert."""

    id: int
    kind: AlertKind
    ref: str
    revision: int
    """1 for an event's first alert; higher when the event changed and was spoken again."""
    zone: str
    text: str
    engine: str
    voice: str
    path: str
    duration_s: float
    created_at: datetime

    @classmethod
    def of(cls, a: AudioAlert) -> AudioAlertView:
        """Build the view of a stored audio alert."""
        return cls(
            id=a.id,
            kind=a.kind,
            ref=a.ref,
            revision=a.revision,
            zone=a.zone,
            text=a.text,
            engine=a.engine,
            voice=a.voice,
            path=a.path,
            duration_s=a.duration_s,
            created_at=a.created_at,
        )


def _zone_name(code: str) -> str:
    zone = ZONES.get(code)
    return zone.name if zone is not None else "an unknown zone"


def curtailment_text(event: CurtailmentEvent) -> str:
    """Return the spoken text of a curtailment event (fixed template)."""
    peak = event.peak_renewable_pct
    share = f", peaking at {peak:.0f} percent renewable" if peak is not None else ""
    return (
        f"Curtailment alert. {_zone_name(event.zone)} has surplus renewable power from "
        f"{event.start_ts:%H:%M} to {event.end_ts:%H:%M} UTC{share}. "
        "Flexible GPU work can move there now."
    )


def incident_text(incident: Incident) -> str:
    """Return the spoken text of an incident (fixed template)."""
    what = _TRIGGER_WORDS.get(incident.trigger, "grid anomaly")
    return (
        f"Incident alert. {what.capitalize()} in {_zone_name(incident.zone)}, "
        f"opened at {incident.opened_at:%H:%M} UTC. The incident agent is evaluating reroutes."
    )


@dataclass(frozen=True)
class _Due:
    """An event whose spoken alert is missing or out of date."""

    kind: AlertKind
    ref: str
    zone: str
    text: str


def synthesize_audio(*, engine: SpeechEngine, data_dir: Path, text: str) -> str:
    """Write the WAV of `text` under `data_dir` unless it is there; return its relative path.

    Touches no database: call it with no transaction open (ElevenLabs is a network service).

    Raises:
        SpeechError: The engine could not produce audio (nothing is written).
    """
    relative = f"{AUDIO_DIR}/{cache_key(engine, text)}.wav"
    target = data_dir / relative
    if not target.is_file():
        data = engine.synthesize(text)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(target)
    return relative


def _store(
    *, session: Session, engine: SpeechEngine, data_dir: Path, due: _Due, now: datetime
) -> AudioAlertView:
    """Store `due`'s alert over its synthesised WAV (the latest one when the text is the same)."""
    key = cache_key(engine, due.text)
    relative = f"{AUDIO_DIR}/{key}.wav"
    duration, _ = wav_stats((data_dir / relative).read_bytes())
    latest = audio_repo.find_audio_alert(session=session, kind=due.kind, ref=due.ref)
    if latest is not None and latest.text_hash == key:
        return AudioAlertView.of(latest)
    revision = 1 if latest is None else latest.revision + 1
    alert = AudioAlert(kind=due.kind, ref=due.ref, revision=revision)
    alert.zone, alert.text, alert.text_hash = due.zone, due.text, key
    alert.engine, alert.voice, alert.path = engine.name, engine.voice, relative
    alert.duration_s, alert.created_at = round(duration, 3), now
    return AudioAlertView.of(audio_repo.save_audio_alert(session=session, alert=alert))


def speak_alert(
    *,
    session: Session,
    engine: SpeechEngine,
    data_dir: Path,
    kind: AlertKind,
    ref: str,
    zone: str,
    text: str,
    now: datetime,
) -> AudioAlertView:
    """Store the spoken `text` for one event; reuse the WAV when the same text was spoken before.

    An alert once stored is never changed: when the event's text differs from its latest alert
    (a curtailment window grew), the new text is stored as the next revision, spoken now.
    The speech is synthesised before `session` is used: open no transaction before calling.

    Raises:
        SpeechError: The engine could not produce audio (nothing is stored).
    """
    synthesize_audio(engine=engine, data_dir=data_dir, text=text)
    due = _Due(kind=kind, ref=ref, zone=zone, text=text)
    return _store(session=session, engine=engine, data_dir=data_dir, due=due, now=now)


def _due_alerts(*, session: Session, engine: SpeechEngine, now: datetime, limit: int) -> list[_Due]:
    """Return recent events and incidents whose spoken alert is missing or out of date."""
    events = session.scalars(
        select(CurtailmentEvent)
        .where(CurtailmentEvent.end_ts >= now - RECENT)
        .order_by(CurtailmentEvent.start_ts.desc())
    ).all()
    todo = [_Due("curtailment", str(e.id), e.zone, curtailment_text(e)) for e in events]
    todo += [
        _Due("incident", i.id, i.zone, incident_text(i))
        for i in incident_repo.list_incidents(session=session, limit=limit)
    ]
    due: list[_Due] = []
    for item in todo:
        existing = audio_repo.find_audio_alert(session=session, kind=item.kind, ref=item.ref)
        if existing is None or existing.text_hash != cache_key(engine, item.text):
            due.append(item)
    return due


def speak_new_alerts(
    *,
    session: Session,
    engine: SpeechEngine,
    data_dir: Path,
    now: datetime,
    limit: int = MAX_NEW_PER_PASS,
) -> list[AudioAlertView]:
    """Give recent curtailment events and incidents their spoken alert; return what was made.

    `session` must have no transaction open; it is committed after every step, so no
    transaction is open while the engine speaks (ElevenLabs is a network service). Each alert
    is stored in its own short transaction once its audio exists. An alert the engine cannot
    speak now is logged and left due: the next pass tries it again, and the others are kept.
    """
    due = _due_alerts(session=session, engine=engine, now=now, limit=limit)
    session.commit()
    made: list[AudioAlertView] = []
    for item in due:
        if len(made) >= limit:
            break
        try:
            synthesize_audio(engine=engine, data_dir=data_dir, text=item.text)
        except SpeechError as exc:
            logger.warning(
                "%s alert %s not spoken yet (retried next pass): %s", item.kind, item.ref, exc
            )
            continue
        try:
            view = _store(session=session, engine=engine, data_dir=data_dir, due=item, now=now)
            session.commit()
        except IntegrityError:
            session.rollback()
            logger.info("%s alert %s was stored by another process first", item.kind, item.ref)
            continue
        made.append(view)
    return made


def list_audio_alerts(
    *, session: Session, kind: AlertKind | None = None, limit: int = 50
) -> list[AudioAlertView]:
    """Return stored audio alerts, newest first."""
    if kind is not None and kind not in ("curtailment", "incident"):
        raise InvalidInputError(f"alert kind {kind!r}: use 'curtailment' or 'incident'")
    rows = audio_repo.list_audio_alerts(session=session, kind=kind, limit=limit)
    return [AudioAlertView.of(a) for a in rows]


def audio_alert_file(*, session: Session, data_dir: Path, alert_id: int) -> Path:
    """Return the WAV file of a stored audio alert.

    Raises:
        NotFoundError: No such alert, or its file is gone.
    """
    alert = audio_repo.get_audio_alert(session=session, alert_id=alert_id)
    if alert is None:
        raise NotFoundError(f"audio alert {alert_id!r} does not exist; list them at /alerts")
    path = data_dir / alert.path
    if not path.is_file():
        raise NotFoundError(f"audio file of alert {alert_id!r} is missing; refresh alerts")
    return path


class TransitionView(BaseModel):
    """One step of an incident's timeline."""

    from_state: str | None
    to_state: str
    reason: str
    at: datetime


class IncidentTimeline(BaseModel):
    """An incident with its state history, reroutes and spoken alert."""

    id: str
    zone: str
    trigger: str
    state: str
    summary: str | None
    details: dict[str, object]
    opened_at: datetime
    transitions: list[TransitionView]
    reroutes: list[dict[str, object]]
    audio_alert_id: int | None


def incident_timelines(*, session: Session, limit: int = 20) -> list[IncidentTimeline]:
    """Return the newest incidents with their transitions, reroutes and audio alert."""
    out: list[IncidentTimeline] = []
    for i in incident_repo.list_incidents(session=session, limit=limit):
        audio = audio_repo.find_audio_alert(session=session, kind="incident", ref=i.id)
        out.append(
            IncidentTimeline(
                id=i.id,
                zone=i.zone,
                trigger=i.trigger,
                state=i.state,
                summary=i.summary,
                details=dict(i.details),
                opened_at=i.opened_at,
                transitions=[
                    TransitionView(
                        from_state=t.from_state, to_state=t.to_state, reason=t.reason, at=t.at
                    )
                    for t in incident_repo.list_transitions(session=session, incident_id=i.id)
                ],
                reroutes=[
                    reroute_view(r)
                    for r in incident_repo.list_reroutes(session=session, incident_id=i.id)
                ],
                audio_alert_id=audio.id if audio else None,
            )
        )
    return out
