# The Baton router (and the edge simulator, same image). See docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 --user-group baton

WORKDIR /app
COPY pyproject.toml ./
COPY router/ router/
COPY endpoints/ endpoints/
COPY edge/ edge/
COPY protocol/ protocol/
COPY common/ common/
COPY sandbox/ sandbox/
RUN pip install . \
    && rm -rf build *.egg-info router endpoints edge protocol common sandbox

# The installed package does not carry config/: point BATON_CONFIG_DIR at this copy (compose
# mounts ./config over it). var/ is the writable place for SQLite files and edge outboxes.
COPY config/ config/
RUN mkdir -p /app/var && chown baton:baton /app/var
ENV BATON_CONFIG_DIR=/app/config \
    BATON_DATA_DIR=/app/var

USER baton
EXPOSE 8080
CMD ["baton", "router", "--host", "0.0.0.0", "--port", "8080"]
