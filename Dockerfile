# PetSpark server image: the production install (DATABASE_URL required: the embedded
# PostgreSQL extra is not in it). Not exercised by CI: no Docker engine on the CI machines.
# Builds for linux/amd64 and linux/arm64 (every runtime dependency has wheels for both).
#
# Build: docker build -t petspark-server .
# Run:   docker run -p 8080:8080 \
#          -e SECRET_KEY="$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')" \
#          -e DATABASE_URL=postgresql://USER:PASSWORD@DB_HOST:5432/petspark \
#          -v petspark-data:/app/var petspark-server
# Keep SECRET_KEY the same across restarts and nodes (a new one logs everyone out). Without
# REDIS_URL the node runs alone (in-process broker); without S3_BUCKET uploads are kept in
# DATA_DIR (/app/var, the volume). `docker run --rm petspark-server --help` lists the main
# variables; migrations ship in the package and run at start (MIGRATE_ON_START).

FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml constraints.txt ./
COPY server ./server
COPY protocol ./protocol
COPY client ./client
RUN python -m venv /venv \
 && /venv/bin/pip install -c constraints.txt .

FROM python:3.11.11-slim-bookworm
RUN useradd --system --create-home --home-dir /app petspark
WORKDIR /app
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/app/var \
    ENVIRONMENT=production
USER petspark
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=2)"]
ENTRYPOINT ["python", "-m", "server"]
CMD ["serve"]
