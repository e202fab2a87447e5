# One Dockerfile, one target per deployable (auth, project, billing, notification,
# notification-worker, analytics). All targets share the same runtime layers:
#
#   make images                     # all six, tagged zoptal/<target>:${ZOPTAL_TAG:-dev}
#   docker build --target auth -t zoptal/auth:dev .
#
# The build stage installs the locked workspace (uv.lock, `uv sync --frozen`) into /opt/venv with
# deploy/build_runtime_env.sh, the same script CI replays without Docker. The runtime stage holds
# only the interpreter and that venv, runs as UID 1000 and writes nothing outside /tmp, so it works
# with a read-only root filesystem (mount a tmpfs or emptyDir on /tmp).
#
# Needs BuildKit (RUN --mount; Docker Engine 20.10 or later, with DOCKER_BUILDKIT=1 before 23.0),
# with the engine's built-in Dockerfile frontend: no `# syntax=` line, so a build never has to pull
# a frontend image. Behind a proxy that re-signs TLS, pass its CA bundle as the build secret
# `build_ca` (`docker build --secret id=build_ca,src=FILE`; compose and `make images` take it from
# ZOPTAL_BUILD_CA_BUNDLE); pip and uv then trust it. Without it they use the image's own CAs.

ARG PYTHON_IMAGE=python:3.11.16-slim-bookworm
ARG UV_VERSION=0.13.9

FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION
RUN --mount=type=secret,id=build_ca \
    if [ -s /run/secrets/build_ca ]; then export PIP_CERT=/run/secrets/build_ca; fi \
    && pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /src

# Third-party dependencies first: this layer is reused until uv.lock or a pyproject changes.
COPY pyproject.toml uv.lock ./
COPY libs/meshcore/pyproject.toml libs/meshcore/
COPY libs/zoptal-api/pyproject.toml libs/zoptal-api/
COPY libs/platform/pyproject.toml libs/platform/
COPY libs/cli/pyproject.toml libs/cli/
COPY libs/loadgen/pyproject.toml libs/loadgen/
COPY services/auth/pyproject.toml services/auth/
COPY services/project/pyproject.toml services/project/
COPY services/billing/pyproject.toml services/billing/
COPY services/notification/pyproject.toml services/notification/
COPY services/analytics/pyproject.toml services/analytics/
COPY deploy/build_runtime_env.sh deploy/
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=build_ca \
    if [ -s /run/secrets/build_ca ]; then export SSL_CERT_FILE=/run/secrets/build_ca; fi \
    && deploy/build_runtime_env.sh /opt/venv --deps-only

# Then the workspace itself, installed non-editable so /opt/venv does not point back at /src.
COPY libs libs
COPY services services
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=build_ca \
    if [ -s /run/secrets/build_ca ]; then export SSL_CERT_FILE=/run/secrets/build_ca; fi \
    && deploy/build_runtime_env.sh /opt/venv


FROM ${PYTHON_IMAGE} AS runtime
# The folders under /var/lib/zoptal are where compose mounts its secret volumes (Auth's signing
# keys, the CA, each service's identity, the database password): created here, owned by the
# runtime user, so a fresh named volume inherits that owner and mode on its first mount. Only the
# database password's folder lets the group in (PostgreSQL reads the file through GID 1000).
RUN groupadd --gid 1000 zoptal \
    && useradd --uid 1000 --gid 1000 --home-dir /tmp --no-create-home \
        --shell /usr/sbin/nologin zoptal \
    && install -d -o 1000 -g 1000 -m 0700 /var/lib/zoptal/keys /var/lib/zoptal/ca \
        /var/lib/zoptal/identity /var/lib/zoptal/identities/auth \
        /var/lib/zoptal/identities/project /var/lib/zoptal/identities/billing \
        /var/lib/zoptal/identities/notification /var/lib/zoptal/identities/analytics \
    && install -d -o 1000 -g 1000 -m 0750 /var/lib/zoptal/db
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    DATA_DIR=/tmp/data \
    ZOPTAL_ENV=production \
    GRPC_HOST=0.0.0.0
WORKDIR /tmp
USER 1000:1000
STOPSIGNAL SIGTERM


FROM runtime AS auth
ENV GRPC_PORT=4000 METRICS_PORT=9400
EXPOSE 4000 9400 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-m", "meshcore.health_probe", "--quiet", "--addr", "127.0.0.1:4000"]
ENTRYPOINT ["python", "-m", "zoptal_auth"]

FROM runtime AS project
ENV GRPC_PORT=4001 METRICS_PORT=9401
EXPOSE 4001 9401
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-m", "meshcore.health_probe", "--quiet", "--addr", "127.0.0.1:4001"]
ENTRYPOINT ["python", "-m", "zoptal_project"]

FROM runtime AS billing
ENV GRPC_PORT=4003 METRICS_PORT=9403
EXPOSE 4003 9403
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-m", "meshcore.health_probe", "--quiet", "--addr", "127.0.0.1:4003"]
ENTRYPOINT ["python", "-m", "zoptal_billing"]

FROM runtime AS notification
ENV GRPC_PORT=4004 METRICS_PORT=9404
EXPOSE 4004 9404
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-m", "meshcore.health_probe", "--quiet", "--addr", "127.0.0.1:4004"]
ENTRYPOINT ["python", "-m", "zoptal_notification"]

# The Celery worker that delivers stored notifications. Its health check asks the worker itself
# (over the broker) whether it answers. It serves its delivery metrics on 9406
# (zoptal_notification.worker_metrics).
FROM runtime AS notification-worker
ENV METRICS_PORT=0 WORKER_METRICS_PORT=9406
EXPOSE 9406
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 \
    CMD ["sh", "-c", "celery -A zoptal_notification.worker inspect ping --timeout 10 -d \"celery@$(hostname)\""]
ENTRYPOINT ["celery", "-A", "zoptal_notification.worker", "worker"]
CMD ["--loglevel=INFO", "--concurrency=2", "--without-gossip", "--without-mingle"]

FROM runtime AS analytics
ENV GRPC_PORT=4005 METRICS_PORT=9405
EXPOSE 4005 9405
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-m", "meshcore.health_probe", "--quiet", "--addr", "127.0.0.1:4005"]
ENTRYPOINT ["python", "-m", "zoptal_analytics"]
