"""Build the chat model: Crusoe (or any OpenAI-compatible server) or the offline model.

This is the only place in the repository that constructs `ChatOpenAI`.
"""

from __future__ import annotations

import logging
from typing import Any

import openai
from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI

from agents.offline import OfflineChatModel
from graphs.settings import Settings

logger = logging.getLogger(__name__)


class ModelEndpointError(RuntimeError):
    """The configured model endpoint is unusable; the message names the setting to change."""


def check_model_served(
    settings: Settings, *, http_client: Any | None = None, client: openai.OpenAI | None = None
) -> list[str]:
    """Return the served model ids after checking `settings.llm_model` is one of them.

    Args:
        settings: Provides base URL, key, model and timeout.
        http_client: Optional `httpx2.Client` (tests pass a mock transport).
        client: Optional ready `openai.OpenAI` client.

    Raises:
        ModelEndpointError: Unreachable URL, rejected key, or a model the server does not serve.
    """
    if settings.llm_api_key is None:
        raise ModelEndpointError("TGTG_LLM_API_KEY is not set; set it or use the offline model")
    client = client or openai.OpenAI(
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key.get_secret_value(),
        timeout=settings.llm_timeout_s,
        max_retries=settings.llm_max_retries,
        http_client=http_client,
    )
    try:
        served = sorted(m.id for m in client.models.list())
    except openai.AuthenticationError as exc:
        raise ModelEndpointError(
            f"the endpoint {settings.llm_base_url!r} rejected the key ({exc.status_code}); "
            "check TGTG_LLM_API_KEY"
        ) from exc
    except (openai.APIConnectionError, openai.NotFoundError) as exc:
        raise ModelEndpointError(
            f"cannot list models at {settings.llm_base_url!r} ({type(exc).__name__}); "
            "check TGTG_LLM_BASE_URL (it should end in /v1)"
        ) from exc
    if settings.llm_model not in served:
        shown = ", ".join(served[:10]) or "none"
        raise ModelEndpointError(
            f"model {settings.llm_model!r} is not served at {settings.llm_base_url!r}; "
            f"set TGTG_LLM_MODEL to one of: {shown}"
        )
    return served


def make_chat_model(
    settings: Settings,
    *,
    verify: bool = True,
    http_client: Any | None = None,
    http_async_client: Any | None = None,
) -> BaseChatModel:
    """Return the chat model described by `settings`.

    Without `TGTG_LLM_API_KEY` this is the offline model. With a key it is `ChatOpenAI` on
    `TGTG_LLM_BASE_URL` speaking Chat Completions (never the Responses API), after checking
    that `TGTG_LLM_MODEL` is served.

    Args:
        settings: The process settings (composition root).
        verify: Check `/v1/models` first and fail fast on a bad URL, key or model.
        http_client: Optional `httpx2.Client` for the sync path (tests, proxies).
        http_async_client: Optional `httpx2.AsyncClient` for the async path.
    """
    if settings.llm_api_key is None:
        logger.info("no TGTG_LLM_API_KEY: using the offline model")
        return OfflineChatModel()
    if verify:
        check_model_served(settings, http_client=http_client)
    return ChatOpenAI(
        model=settings.llm_model,
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key,
        timeout=settings.llm_timeout_s,
        max_retries=settings.llm_max_retries,
        temperature=settings.llm_temperature,
        use_responses_api=False,
        http_client=http_client,
        http_async_client=http_async_client,
    )
