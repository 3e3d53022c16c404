# PetSpark server image. Not exercised by CI (no Docker engine on the CI machines).
# Build: docker build -t petspark-server .
# Run:   docker run -p 8080:8080 -e HOST=0.0.0.0 -e DATABASE_URL=... -e REDIS_URL=... petspark-server

FROM python:3.11-slim AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml constraints.txt ./
COPY server ./server
COPY protocol ./protocol
COPY client ./client
RUN python -m venv /venv \
 && /venv/bin/pip install -c constraints.txt .

FROM python:3.11-slim
RUN useradd --system --create-home --home-dir /app petspark
WORKDIR /app
COPY --from=build /venv /venv
COPY migrations ./migrations
COPY server ./server
COPY protocol ./protocol
COPY client ./client
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/app/var \
    ENVIRONMENT=production
USER petspark
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"8080\")}/healthz', timeout=2)" || exit 1
ENTRYPOINT ["python", "-m", "server"]
CMD ["serve"]
