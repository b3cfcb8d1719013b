# cryptodudez: the Dagster code location, webserver/daemon and the prediction API in one image.
# Build: docker build -t cryptodudez .     Run the API: docker run -p 8000:8000 cryptodudez serve
FROM python:3.11-slim AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy PIP_DISABLE_PIP_VERSION_CHECK=1
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

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 app
WORKDIR /app
COPY --from=build --chown=app:app /app /app
ENV PATH="/app/.venv/bin:$PATH" \
    DAGSTER_HOME=/app/.dagster \
    CRYPTODUDEZ_LAKE=/data/lake \
    PYTHONUNBUFFERED=1
RUN mkdir -p /data/lake /app/.dagster && chown -R app:app /data /app/.dagster
USER app
EXPOSE 3000 8000
# Default: the Dagster webserver + daemon (sensors running) on the configured lake.
# Other entry points: `cryptodudez ingest`, `cryptodudez serve --host 0.0.0.0 --port 8000`.
ENTRYPOINT ["cryptodudez"]
CMD ["ui", "--host", "0.0.0.0", "--port", "3000"]
