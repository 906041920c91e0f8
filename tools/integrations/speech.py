"""Turn alert text into speech: ElevenLabs when a key is set, else offline espeak-ng.

Both engines return a complete 16-bit mono WAV. The offline engine calls libespeak-ng through
ctypes from the `espeakng-loader` wheel (library and voice data bundled); without that package
it runs the Debian `espeak-ng` binary. Callers pass only text built from fixed templates.
"""

from __future__ import annotations

import ctypes
import io
import logging
import shutil
import subprocess
import threading
import wave
from typing import Any

import httpx

from tools.incidents.ports import SpeechEngine, SpeechError

logger = logging.getLogger(__name__)

DEFAULT_VOICE_ID = "JBFqnCBsd6RMkjVDRZzb"
"""ElevenLabs voice used for alerts (the documented example voice)."""
DEFAULT_MODEL_ID = "eleven_multilingual_v2"
ELEVENLABS_SAMPLE_RATE = 22_050
ESPEAK_VOICE = "en-us"
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_CHARS_AUTO = 0
_POS_CHARACTER = 1


def pcm_to_wav(pcm: bytes, sample_rate: int) -> bytes:
    """Wrap raw 16-bit little-endian mono PCM in a WAV container."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm[: len(pcm) - len(pcm) % 2])
    return buffer.getvalue()


class ElevenLabsSpeech:
    """Speak through the ElevenLabs text-to-speech API (PCM 22.05 kHz, wrapped as WAV)."""

    def __init__(
        self,
        *,
        api_key: str,
        voice_id: str = DEFAULT_VOICE_ID,
        model_id: str = DEFAULT_MODEL_ID,
        base_url: str | None = None,
        httpx_client: httpx.Client | None = None,
        timeout_s: float = 20.0,
    ) -> None:
        from elevenlabs.client import ElevenLabs

        kwargs: dict[str, Any] = {"api_key": api_key, "timeout": timeout_s}
        if base_url is not None:
            kwargs["base_url"] = base_url
        if httpx_client is not None:
            kwargs["httpx_client"] = httpx_client
        self._client = ElevenLabs(**kwargs)
        self._voice_id = voice_id
        self._model_id = model_id

    @property
    def name(self) -> str:
        """Return 'elevenlabs'."""
        return "elevenlabs"

    @property
    def voice(self) -> str:
        """Return the voice id."""
        return self._voice_id

    def synthesize(self, text: str) -> bytes:
        """Return the spoken `text` as a WAV; raise SpeechError on an API failure."""
        from elevenlabs.core.api_error import ApiError

        try:
            chunks = self._client.text_to_speech.convert(
                self._voice_id,
                text=text,
                model_id=self._model_id,
                output_format=f"pcm_{ELEVENLABS_SAMPLE_RATE}",
            )
            pcm = b"".join(chunks)
        except ApiError as exc:
            raise SpeechError(f"ElevenLabs refused the request ({exc.status_code})") from exc
        except httpx.HTTPError as exc:
            raise SpeechError(f"ElevenLabs unreachable: {type(exc).__name__}") from exc
        if not pcm:
            raise SpeechError("ElevenLabs returned no audio")
        return pcm_to_wav(pcm, ELEVENLABS_SAMPLE_RATE)


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class EspeakSpeech:
    """Speak offline with espeak-ng: the bundled library via ctypes, or the Debian binary."""

    _lock = threading.Lock()
    """libespeak-ng keeps global state: one synthesis at a time per process."""

    def __init__(self, *, voice: str = ESPEAK_VOICE) -> None:
        self._voice = voice
        self._lib: Any = None
        self._rate = 0

    @property
    def name(self) -> str:
        """Return 'espeak-ng'."""
        return "espeak-ng"

    @property
    def voice(self) -> str:
        """Return the espeak voice name."""
        return self._voice

    def _library(self) -> Any:
        if self._lib is None:
            import espeakng_loader

            lib = ctypes.CDLL(str(espeakng_loader.get_library_path()))
            data = str(espeakng_loader.get_data_path()).encode()
            rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
            if rate <= 0:
                raise SpeechError(f"espeak_Initialize failed with {rate!r}")
            if lib.espeak_SetVoiceByName(self._voice.encode()) != 0:
                raise SpeechError(f"espeak-ng has no voice {self._voice!r}")
            self._lib, self._rate = lib, rate
        return self._lib

    def _with_library(self, text: str) -> bytes:
        chunks: list[bytes] = []

        def on_audio(wav: Any, count: int, _events: Any) -> int:
            if count > 0:
                chunks.append(ctypes.string_at(wav, count * 2))
            return 0

        callback = _SYNTH_CALLBACK(on_audio)
        raw = text.encode()
        with self._lock:
            lib = self._library()
            lib.espeak_SetSynthCallback(callback)
            lib.espeak_SetVoiceByName(self._voice.encode())
            status = lib.espeak_Synth(
                raw, len(raw) + 1, 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_AUTO, None, None
            )
            lib.espeak_Synchronize()
        if status != 0:
            raise SpeechError(f"espeak_Synth failed with {status!r}")
        return pcm_to_wav(b"".join(chunks), self._rate)

    def _with_binary(self, text: str, binary: str) -> bytes:
        done = subprocess.run(  # noqa: S603 - fixed binary, text passed as one argument
            [binary, "-v", self._voice, "--stdout", text],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0 or not done.stdout:
            raise SpeechError(f"{binary} exited {done.returncode}: {done.stderr[:200]!r}")
        return done.stdout

    def synthesize(self, text: str) -> bytes:
        """Return the spoken `text` as a WAV; raise SpeechError when no espeak-ng is available."""
        try:
            import espeakng_loader  # noqa: F401
        except ImportError:
            binary = shutil.which("espeak-ng")
            if binary is None:
                raise SpeechError(
                    "no offline speech: install the espeakng-loader package or Debian espeak-ng"
                ) from None
            return self._with_binary(text, binary)
        return self._with_library(text)


def make_speech_engine(
    *, elevenlabs_api_key: str | None, httpx_client: httpx.Client | None = None
) -> SpeechEngine:
    """Return ElevenLabs when a key is given, else the offline espeak-ng engine."""
    if elevenlabs_api_key:
        return ElevenLabsSpeech(api_key=elevenlabs_api_key, httpx_client=httpx_client)
    return EspeakSpeech()
