"""Build the chat model: Crusoe (or any OpenAI-compatible server) or the offline model.

This is the only place in the repository that constructs `ChatOpenAI`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from tools.clock import Clock

if TYPE_CHECKING:
    import openai
    from langchain_core.language_models import BaseChatModel

# The OpenAI SDK and LangChain's OpenAI client take over a second to import: they load only on
# the code path that talks to a real endpoint, so offline chat starts quickly.

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelEndpoint:
    """An OpenAI-compatible endpoint: where, which model, with which key and limits.

    Built from the settings at a composition root (`Settings.model_endpoint()`); no key means
    the offline model.
    """

    base_url: str
    api_key: SecretStr | None
    model: str
    timeout_s: float = 30.0
    max_retries: int = 2
    temperature: float = 0.0


class ModelEndpointError(RuntimeError):
    """The configured model endpoint is unusable; the message names the setting to change."""


def check_model_served(
    endpoint: ModelEndpoint, *, http_client: Any | None = None, client: openai.OpenAI | None = None
) -> list[str]:
    """Return the served model ids after checking `endpoint.model` is one of them.

    Args:
        endpoint: Base URL, key, model and timeout.
        http_client: Optional `httpx2.Client` (tests pass a mock transport).
        client: Optional ready `openai.OpenAI` client.

    Raises:
        ModelEndpointError: Unreachable URL, rejected key, or a model the server does not serve.
    """
    import openai

    if endpoint.api_key is None:
        raise ModelEndpointError("TGTG_LLM_API_KEY is not set; set it or use the offline model")
    client = client or openai.OpenAI(
        base_url=endpoint.base_url,
        api_key=endpoint.api_key.get_secret_value(),
        timeout=endpoint.timeout_s,
        max_retries=endpoint.max_retries,
        http_client=http_client,
    )
    try:
        served = sorted(m.id for m in client.models.list())
    except openai.AuthenticationError as exc:
        raise ModelEndpointError(
            f"the endpoint {endpoint.base_url!r} rejected the key ({exc.status_code}); "
            "check TGTG_LLM_API_KEY"
        ) from exc
    except (openai.APIConnectionError, openai.NotFoundError) as exc:
        raise ModelEndpointError(
            f"cannot list models at {endpoint.base_url!r} ({type(exc).__name__}); "
            "check TGTG_LLM_BASE_URL (it should end in /v1)"
        ) from exc
    if endpoint.model not in served:
        shown = ", ".join(served[:10]) or "none"
        raise ModelEndpointError(
            f"model {endpoint.model!r} is not served at {endpoint.base_url!r}; "
            f"set TGTG_LLM_MODEL to one of: {shown}"
        )
    return served


def make_chat_model(
    endpoint: ModelEndpoint,
    *,
    verify: bool = True,
    http_client: Any | None = None,
    http_async_client: Any | None = None,
    clock: Clock | None = None,
    org_id: str | None = None,
) -> BaseChatModel:
    """Return the chat model of `endpoint`.

    Without `TGTG_LLM_API_KEY` this is the offline model. With a key it is `ChatOpenAI` on
    `TGTG_LLM_BASE_URL` speaking Chat Completions (never the Responses API), after checking
    that `TGTG_LLM_MODEL` is served.

    Args:
        endpoint: The model endpoint (from the settings, at a composition root).
        verify: Check `/v1/models` first and fail fast on a bad URL, key or model.
        http_client: Optional `httpx2.Client` for the sync path (tests, proxies).
        http_async_client: Optional `httpx2.AsyncClient` for the async path.
        clock: The composition root's clock, given to the offline model (a real model reads
            the time from its system prompt).
        org_id: The organisation the operator acts for, given to the offline model.
    """
    if endpoint.api_key is None:
        from agents.offline import OfflineChatModel

        logger.info("no TGTG_LLM_API_KEY: using the offline model")
        return OfflineChatModel(clock=clock, org_id=org_id)
    if verify:
        check_model_served(endpoint, http_client=http_client)
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=endpoint.model,
        base_url=endpoint.base_url,
        api_key=endpoint.api_key,
        timeout=endpoint.timeout_s,
        max_retries=endpoint.max_retries,
        temperature=endpoint.temperature,
        use_responses_api=False,
        http_client=http_client,
        http_async_client=http_async_client,
    )
