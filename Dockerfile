# Two images from one Dockerfile; docker-compose.yml picks each service's target.
#   router (the default, last stage): `pip install .`, the router alone: no faster-whisper,
#          CTranslate2, aiortc, PyAV or Whisper weights.
#   edge:  `pip install .[edge]`: `baton edge` (speech, translation, WebRTC media) and the
#          simulated device `baton edge-sim`.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 --user-group baton

WORKDIR /app
COPY pyproject.toml ./
COPY protocol/ protocol/
COPY common/ common/
COPY router/ router/
COPY endpoints/ endpoints/
COPY edge/ edge/
COPY sandbox/ sandbox/

# The installed package does not carry config/: point BATON_CONFIG_DIR at this copy (compose
# mounts ./config over it). var/ is the writable place for SQLite files and edge outboxes.
COPY config/ config/
RUN mkdir -p /app/var && chown baton:baton /app/var
ENV BATON_CONFIG_DIR=/app/config \
    BATON_DATA_DIR=/app/var


FROM base AS edge
RUN pip install ".[edge]" \
    && rm -rf build *.egg-info protocol common router endpoints edge sandbox
USER baton
CMD ["baton", "edge", "--help"]


FROM base AS router
RUN pip install . \
    && rm -rf build *.egg-info protocol common router endpoints edge sandbox
USER baton
EXPOSE 8080
CMD ["baton", "router", "--host", "0.0.0.0", "--port", "8080"]
