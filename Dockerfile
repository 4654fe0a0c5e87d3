# syntax=docker/dockerfile:1
# One image for every Alertline service; the command picks the service:
#   alertline run ingest | evaluate | enrich | ticket,  alertline scan ...,  alertline topics create
# Targets:
#   runtime (the default, last stage)  every service except enrich
#   enrich                             runtime + Debian's Chromium for screenshots
#   builder                            build stage only; never shipped
# Release builds should pin the base by digest too:
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest> .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# Compilers stay in this stage: a dependency without a wheel for the platform still builds here.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY requirements.lock pyproject.toml ./
RUN python -m venv /opt/alertline \
 && /opt/alertline/bin/pip install --constraint requirements.lock setuptools wheel
COPY alertline ./alertline
COPY services ./services
COPY schemas ./schemas
# Runtime dependencies only, each at its locked version (the lock also pins test and lint tools,
# which the image does not need). Byte-code is compiled now: the root filesystem is read-only.
RUN /opt/alertline/bin/pip install --constraint requirements.lock --no-build-isolation . \
 && /opt/alertline/bin/pip check \
 && /opt/alertline/bin/pip uninstall -y setuptools wheel \
 && /opt/alertline/bin/python -m compileall -q /opt/alertline/lib \
 && cp -r schemas /opt/alertline/schemas

# ---------------------------------------------------------------- base (shared by both targets)
FROM ${PYTHON_IMAGE} AS base
ENV PATH=/opt/alertline/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ALERTLINE_SCHEMAS_DIR=/opt/alertline/schemas \
    HOME=/tmp
# Numeric ids so Kubernetes' runAsNonRoot can verify them (the chart runs as 10001:10001).
RUN groupadd --system --gid 10001 alertline \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin alertline
COPY --from=builder /opt/alertline /opt/alertline
EXPOSE 8080
USER 10001:10001
ENTRYPOINT ["alertline"]
CMD ["--help"]

# ---------------------------------------------------------------- enrich
FROM base AS enrich
# Same pin as scripts/bootstrap (a test keeps them equal); bump both together.
ARG CHROMIUM_VERSION=156.0.8078.79-1~deb12u1
USER 0:0
# tini reaps the renderer processes Chromium leaves behind when the service is PID 1.
RUN apt-get update \
 && apt-get install -y --no-install-recommends "chromium=${CHROMIUM_VERSION}" fonts-liberation tini \
 && rm -rf /var/lib/apt/lists/*
ENV ALERTLINE_ENRICH__CHROMIUM_PATH=/usr/bin/chromium
USER 10001:10001
ENTRYPOINT ["tini", "--", "alertline"]
CMD ["run", "enrich"]

# ---------------------------------------------------------------- runtime (default target)
FROM base AS runtime
