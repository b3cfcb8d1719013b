# cryptodudez: one image, three long-running roles and the one-off commands of the CLI.
#
#   docker build -t cryptodudez .
#   docker run -p 8000:8000 -v lake:/data/lake cryptodudez serve     # the prediction API alone
#
# Roles (each its own container, all from this image; `dagster dev` is for local use only):
#   webserver  Dagster UI and GraphQL on :3000 (dagster-webserver)
#   daemon     sensors, run queue and backfills: launches the pipeline's runs
#              (dagster-daemon run); run exactly one
#   code-location
#              the definitions behind a Dagster code server on :4000 (dagster code-server
#              start); runs are launched from it. With CRYPTODUDEZ_CODE_LOCATION=host:4000
#              the webserver and the daemon load the code from it (a workspace with a
#              grpc_server entry, written into DAGSTER_HOME at start), never in-process;
#              without it they load workspace.yaml themselves (one host, no code-location)
#   serve      GET /predict on :8000 from the lake's latest model; workers default to the
#              CPUs the container's quota allows (--cpus), override with --workers N
#   one-off    docker run --rm -v lake:/data/lake -v dagster:/data/dagster cryptodudez ingest
#              (also: land, summary, demo)
#
# As a compose file (`init: true`, or `docker run --init`, puts an init process at PID 1
# that forwards signals and reaps the daemon's run and code-server subprocesses):
#
#   services:
#     webserver:
#       image: cryptodudez
#       command: ["webserver"]
#       init: true
#       environment: {CRYPTODUDEZ_CODE_LOCATION: "code-location:4000"}
#       ports: ["3000:3000"]
#       volumes: ["lake:/data/lake", "dagster:/data/dagster"]
#     daemon:
#       image: cryptodudez
#       command: ["daemon"]
#       init: true
#       environment: {CRYPTODUDEZ_CODE_LOCATION: "code-location:4000"}
#       volumes: ["lake:/data/lake", "dagster:/data/dagster"]
#     code-location:
#       image: cryptodudez
#       command: ["code-location"]
#       init: true
#       volumes: ["lake:/data/lake", "dagster:/data/dagster"]
#     api:
#       image: cryptodudez
#       command: ["serve"]
#       init: true
#       ports: ["8000:8000"]
#       volumes: ["lake:/data/lake"]
#       cpus: 2
#   volumes: {lake: {}, dagster: {}}
#
# State lives in two volumes: /data/lake (the lake; or CRYPTODUDEZ_LAKE=s3://bucket/prefix)
# and /data/dagster (DAGSTER_HOME: run history, sensor cursors, daemon heartbeats), so a
# restarted container resumes where it stopped. The webserver and the daemon share
# DAGSTER_HOME's SQLite files on one host; across hosts set CRYPTODUDEZ_DAGSTER_PG_URL, or
# DAGSTER_PG_HOST, DAGSTER_PG_DB, DAGSTER_PG_USERNAME and DAGSTER_PG_PASSWORD (as ECS does),
# and each role writes a dagster.yaml on dagster-postgres at start.
#
# Listening: the image sets CRYPTODUDEZ_HOST=0.0.0.0, so `serve` and `webserver` listen on
# every interface of the container (outside a container both default to 127.0.0.1).
#
# Health: each role records at start how it is checked (in $CRYPTODUDEZ_HEALTH_FILE) and the
# HEALTHCHECK runs that check without loading Dagster unless it has to:
#   serve      GET http://127.0.0.1:<port>/health
#   webserver  GET http://127.0.0.1:<port>/server_info
#   code-location
#              dagster api grpc-health-check -p <port>
#   daemon     dagster-daemon liveness-check (every daemon wrote a heartbeat in the last 300 s;
#              this check loads Dagster, a few CPU-seconds each minute)
# The check gives up after $CRYPTODUDEZ_HEALTHCHECK_TIMEOUT (25 s; keep it below --timeout).
# A one-off command records nothing and reports unhealthy, which `docker run --rm` ignores.

# Base image pinned by version and digest; refresh both together, e.g. with
# `docker buildx imagetools inspect python:3.11-slim-bookworm`.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

FROM ${PYTHON_IMAGE} AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_NO_CACHE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
# Dependencies first (cached layer), from the lock file exactly.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY cryptodudez ./cryptodudez
COPY serving ./serving
COPY samples ./samples
COPY workspace.yaml ./
RUN uv sync --frozen --no-dev

FROM ${PYTHON_IMAGE}
RUN useradd --create-home --uid 10001 --user-group app \
    && mkdir -p /data/lake /data/dagster \
    && chown -R 10001:10001 /data
WORKDIR /app
COPY --from=build --chown=10001:10001 /app /app
ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CRYPTODUDEZ_LAKE=/data/lake \
    DAGSTER_HOME=/data/dagster \
    CRYPTODUDEZ_HOST=0.0.0.0 \
    CRYPTODUDEZ_HEALTH_FILE=/tmp/cryptodudez.health
# Declared after the chown above, so new volumes start owned by the app user.
VOLUME ["/data/lake", "/data/dagster"]
USER 10001:10001
EXPOSE 3000 4000 8000
HEALTHCHECK --interval=60s --timeout=30s --start-period=120s --retries=3 \
    CMD ["python", "-m", "serving", "--healthcheck"]
ENTRYPOINT ["cryptodudez"]
CMD ["webserver", "--port", "3000"]
