# Too Green To Go: API and operator console on one port (7860).
# Build: docker build -t too-green-to-go .   Run: docker run -p 7860:7860 -v tgtg-data:/data too-green-to-go

# Build stage: uv installs exactly what uv.lock pins (no dev group) into /app/.venv.
FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1

RUN pip install 'uv>=0.13,<1'

WORKDIR /app
# Third-party packages first: this layer is rebuilt only when the lock or pyproject.toml changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --no-install-project
COPY README.md ./
COPY agents ./agents
COPY evals ./evals
COPY graphs ./graphs
COPY prompts ./prompts
COPY store ./store
COPY tools ./tools
COPY ui ./ui
# The project itself as a regular (non-editable) install, so the runtime image needs no sources.
RUN uv sync --locked --no-dev --no-editable

# Runtime stage: the same base image (so the venv's interpreter path holds), without uv or sources.
FROM python:3.11-slim-bookworm

ENV PATH=/app/.venv/bin:$PATH \
    VIRTUAL_ENV=/app/.venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    HF_HUB_DISABLE_TELEMETRY=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    TGTG_HOST=0.0.0.0 \
    TGTG_PORT=7860 \
    TGTG_DATA_DIR=/data

# espeak-ng speaks the offline audio alerts (ElevenLabs is used when TGTG_ELEVENLABS_API_KEY is set).
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY --from=build /app/.venv /app/.venv

# Any UID with group 0 can write /data (OpenShift runs containers with an arbitrary UID).
RUN useradd --uid 10001 --gid 0 --no-create-home --home-dir /app tgtg \
    && mkdir -p /data \
    && chown 10001:0 /data \
    && chmod 0770 /data
USER 10001
VOLUME ["/data"]
EXPOSE 7860

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/api/v1/health', timeout=4)"

CMD ["tgtg", "serve"]
