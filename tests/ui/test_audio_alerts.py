import json
import math
import struct
from datetime import timedelta

import httpx
import pytest

from store import grid_repo
from store.db import make_session_factory
from tests.wire.test_forecasts_outside_transactions import store_locked
from tools.errors import InvalidInputError
from tools.grid import CurtailmentWindow
from tools.incidents.alerts import (
    curtailment_text,
    list_audio_alerts,
    speak_alert,
    speak_new_alerts,
)
from tools.incidents.ports import SpeechError, wav_stats
from tools.integrations.speech import (
    ELEVENLABS_SAMPLE_RATE,
    ElevenLabsSpeech,
    EspeakSpeech,
    make_speech_engine,
)

NOW_TEXT = "Curtailment alert. France has surplus renewable power from 11:00 to 14:00 UTC."


def _tone(seconds: float) -> bytes:
    n = int(ELEVENLABS_SAMPLE_RATE * seconds)
    return b"".join(struct.pack("<h", int(8000 * math.sin(i / 10))) for i in range(n))


class FakeElevenLabs:
    """The ElevenLabs TTS endpoint at the HTTP layer (for httpx.MockTransport)."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[httpx.Request] = []
        self.status = status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status != 200:
            return httpx.Response(self.status, json={"detail": {"status": "invalid_api_key"}})
        return httpx.Response(200, content=_tone(0.5), headers={"content-type": "audio/pcm"})


def _eleven(fake: FakeElevenLabs) -> ElevenLabsSpeech:
    client = httpx.Client(transport=httpx.MockTransport(fake))
    return ElevenLabsSpeech(api_key="xi-test", httpx_client=client)


def test_elevenlabs_sends_the_documented_request_and_returns_a_wav():
    fake = FakeElevenLabs()
    wav = _eleven(fake).synthesize(NOW_TEXT)
    (request,) = fake.requests
    assert request.method == "POST"
    assert request.url.path == "/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb"
    assert request.url.params["output_format"] == "pcm_22050"
    assert request.headers["xi-api-key"] == "xi-test"
    body = json.loads(request.content)
    assert body["text"] == NOW_TEXT and body["model_id"] == "eleven_multilingual_v2"
    duration, rms = wav_stats(wav)
    assert duration == pytest.approx(0.5, abs=0.01) and rms > 1000


def test_elevenlabs_rejection_is_a_speech_error():
    with pytest.raises(SpeechError, match="401"):
        _eleven(FakeElevenLabs(status=401)).synthesize("hello")


def test_the_offline_engine_speaks_real_audio():
    wav = EspeakSpeech().synthesize(NOW_TEXT)
    duration, rms = wav_stats(wav)
    assert duration > 2.0, duration
    assert rms > 500, rms


def test_the_engine_follows_the_key():
    assert make_speech_engine(elevenlabs_api_key=None).name == "espeak-ng"
    assert make_speech_engine(elevenlabs_api_key="k").name == "elevenlabs"


def _event(session, now, zone="FR"):
    window = CurtailmentWindow(
        zone=zone,
        source="sim",
        start=now,
        end=now + timedelta(hours=3),
        hours=3,
        peak_surplus_mw=1200.0,
        peak_renewable_pct=81.0,
    )
    grid_repo.upsert_curtailment_events(session=session, windows=[window], source="sim", now=now)
    return grid_repo.list_curtailment_events(session=session, zone=zone)[0]


def test_one_alert_per_curtailment_event_cached_by_text(session, now, tmp_path):
    fake = FakeElevenLabs()
    engine = _eleven(fake)
    event = _event(session, now)
    made = speak_new_alerts(session=session, engine=engine, data_dir=tmp_path, now=now)
    assert [(a.kind, a.ref, a.zone, a.engine) for a in made] == [
        ("curtailment", str(event.id), "FR", "elevenlabs")
    ]
    assert made[0].text == curtailment_text(event)
    assert "France" in made[0].text and "81 percent" in made[0].text
    assert (tmp_path / made[0].path).is_file()
    assert speak_new_alerts(session=session, engine=engine, data_dir=tmp_path, now=now) == []
    again = speak_alert(
        session=session,
        engine=engine,
        data_dir=tmp_path,
        kind="curtailment",
        ref="other",
        zone="FR",
        text=made[0].text,
        now=now,
    )
    assert again.path == made[0].path
    assert len(fake.requests) == 1
    assert [a.ref for a in list_audio_alerts(session=session)] == ["other", str(event.id)]


def test_the_offline_engine_stores_a_playable_wav(session, now, tmp_path):
    _event(session, now, zone="ES")
    (alert,) = speak_new_alerts(session=session, engine=EspeakSpeech(), data_dir=tmp_path, now=now)
    assert alert.engine == "espeak-ng" and alert.duration_s > 2
    assert wav_stats((tmp_path / alert.path).read_bytes())[1] > 500


def test_list_rejects_an_unknown_kind(session):
    with pytest.raises(InvalidInputError, match="'sms'"):
        list_audio_alerts(session=session, kind="sms")  # type: ignore[arg-type]  # invalid on purpose


def test_a_grown_curtailment_window_is_a_new_revision_and_the_first_alert_is_kept(
    session, now, tmp_path
):
    engine = _eleven(FakeElevenLabs())
    event = _event(session, now)
    (first,) = speak_new_alerts(session=session, engine=engine, data_dir=tmp_path, now=now)
    later = now + timedelta(minutes=70)
    grown = CurtailmentWindow(
        zone="FR",
        source="sim",
        start=now + timedelta(hours=2),
        end=now + timedelta(hours=5),
        hours=3,
        peak_surplus_mw=1500.0,
        peak_renewable_pct=88.0,
    )
    grid_repo.upsert_curtailment_events(session=session, windows=[grown], source="sim", now=later)
    (second,) = speak_new_alerts(session=session, engine=engine, data_dir=tmp_path, now=later)
    assert (second.kind, second.ref, second.revision) == ("curtailment", str(event.id), 2)
    assert second.text != first.text and second.created_at == later
    listed = list_audio_alerts(session=session)
    assert [(a.id, a.revision) for a in listed] == [(second.id, 2), (first.id, 1)]
    kept = listed[1]
    assert (kept.text, kept.created_at, kept.path) == (first.text, first.created_at, first.path)
    assert speak_new_alerts(session=session, engine=engine, data_dir=tmp_path, now=later) == []


class ProbedElevenLabs(FakeElevenLabs):
    """ElevenLabs that notes, per request, whether the store was locked; down for some texts."""

    def __init__(self, db, down_for: str | None = None) -> None:
        super().__init__()
        self.db, self.down_for = db, down_for
        self.locked: list[bool] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.locked.append(store_locked(self.db))
        if self.down_for is not None and self.down_for in json.loads(request.content)["text"]:
            self.requests.append(request)
            return httpx.Response(503, json={"detail": "overloaded"})
        return super().__call__(request)


def test_speech_runs_outside_transactions_and_a_failed_alert_is_spoken_next_pass(
    sqlite_engine, now, tmp_path, caplog
):
    sessions = make_session_factory(sqlite_engine)
    with sessions.begin() as s:
        fr, es = _event(s, now, zone="FR"), _event(s, now, zone="ES")
    down = ProbedElevenLabs(tmp_path / "test.db", down_for="Spain")
    with sessions() as s:
        made = speak_new_alerts(session=s, engine=_eleven(down), data_dir=tmp_path, now=now)
    assert [a.ref for a in made] == [str(fr.id)]
    assert len(down.locked) == 2 and not any(down.locked)
    assert any(f"alert {es.id} not spoken yet" in r.getMessage() for r in caplog.records)
    up = ProbedElevenLabs(tmp_path / "test.db")
    with sessions() as s:
        later = speak_new_alerts(session=s, engine=_eleven(up), data_dir=tmp_path, now=now)
        stored = list_audio_alerts(session=s)
    assert [a.ref for a in later] == [str(es.id)]
    assert up.locked == [False]
    assert sorted(a.ref for a in stored) == sorted([str(fr.id), str(es.id)])
