# One image for every QualityWatch process: `qualitywatch migrate`, `qualitywatch worker`,
# `qualitywatch alerts serve`, the ingest front door. deploy/compose.yaml and deploy/k8s/ run it with
# different commands.
#
#   docker build -t qualitywatch:0.1.0 .
#
# The install step is `pip install ".[postgres]"` from the copied pyproject.toml: the runtime
# dependencies (faust-streaming and aiokafka pinned together, crc32c, ...) plus the PostgreSQL driver.
# tests/unit/test_deploy_runtime_config.py checks this file against pyproject.toml.

FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas/ schemas/
COPY detectors/ detectors/
COPY stream/ stream/
COPY alerts/ alerts/
COPY qualitywatch/ qualitywatch/
RUN python -m venv /opt/qualitywatch \
 && /opt/qualitywatch/bin/pip install ".[postgres]"

FROM python:3.11-slim-bookworm

ENV PATH=/opt/qualitywatch/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/qualitywatch --create-home qualitywatch
COPY --from=build /opt/qualitywatch /opt/qualitywatch
USER qualitywatch
# faust keeps its small local data directory under the working directory
WORKDIR /var/lib/qualitywatch
# 6066: worker /metrics and /healthz; 8000: alert service; 8080: ingest front door
EXPOSE 6066 8000 8080
CMD ["qualitywatch", "--help"]
