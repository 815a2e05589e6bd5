# xgate's container image: the wheel with its hot path compiled by mypyc, on Debian bookworm's Python 3.11.
#
#   docker build -t xgate .                                      # from the public debian:bookworm-slim
#   docker build --build-arg BASE_IMAGE=my/bookworm -t xgate .   # any Debian bookworm root file system
#
# Behind a proxy with its own CA, or with a private package index:
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt \
#                --build-arg PIP_INDEX_URL --network host -t xgate .
# (.ci/image.sh builds it so from a debootstrapped base). docs/deploy.md, "Containers", tells how to run it.
#
# No `# syntax=` line: the Dockerfile frontend built into BuildKit (Docker 20.10 and later) is enough, and
# machines without a registry cannot fetch another.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS builder
ARG PIP_INDEX_URL=
ARG PIP_EXTRA_INDEX_URL=
ARG UV_INDEX_URL=
ARG UV_EXTRA_INDEX_URL=
ARG UV_VERSION=0.13.9
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends python3 python3-venv python3-dev gcc libc6-dev \
        ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/*
# the CA bundle, when given, is read from the secret (never stored in a layer); otherwise Debian's
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 UV_NO_CACHE=1 UV_LINK_MODE=copy
RUN --mount=type=secret,id=ca \
    ca=/etc/ssl/certs/ca-certificates.crt; [ -s /run/secrets/ca ] && ca=/run/secrets/ca; \
    python3 -m venv /opt/uv \
 && PIP_CERT=$ca /opt/uv/bin/pip install -q "uv==${UV_VERSION}"
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
COPY src ./src
# make wheel: the mypyc hook on (it needs the C compiler installed above), then a venv with the runtime
# lock and that wheel only. The venv's python is Debian's /usr/bin/python3.11, as in the runtime stage.
RUN --mount=type=secret,id=ca \
    ca=/etc/ssl/certs/ca-certificates.crt; [ -s /run/secrets/ca ] && ca=/run/secrets/ca; \
    export SSL_CERT_FILE=$ca \
        UV_INDEX_URL="${UV_INDEX_URL:-$PIP_INDEX_URL}" UV_EXTRA_INDEX_URL="${UV_EXTRA_INDEX_URL:-$PIP_EXTRA_INDEX_URL}"; \
    [ -n "$UV_INDEX_URL" ] || unset UV_INDEX_URL; [ -n "$UV_EXTRA_INDEX_URL" ] || unset UV_EXTRA_INDEX_URL; \
    HATCH_BUILD_HOOKS_ENABLE=1 /opt/uv/bin/uv build --wheel --python /usr/bin/python3 --out-dir /dist \
 && /opt/uv/bin/uv venv -q --python /usr/bin/python3 /opt/xgate \
 && /opt/uv/bin/uv pip install -q --python /opt/xgate/bin/python -r requirements.lock \
 && /opt/uv/bin/uv pip install -q --python /opt/xgate/bin/python --no-deps /dist/xgate-*.whl \
 && /opt/xgate/bin/python -c "import xgate.validation as v, sys; sys.exit(not v.__file__.endswith('.so'))"

FROM ${BASE_IMAGE}
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends python3 >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/xgate --shell /usr/sbin/nologin xgate \
 && install -d -o xgate -g xgate -m 0750 /var/lib/xgate \
 && install -d -m 0755 /etc/xgate \
 && ln -s /var/lib/xgate /etc/xgate/var
COPY --from=builder /opt/xgate /opt/xgate
# XGATE_CONFIG: the mounted configuration; XGATE_SECRETS_DIR: each file /run/secrets/NAME (Docker and
# Compose secrets) is the variable NAME unless the environment sets it (xgate.secret_files)
ENV PATH=/opt/xgate/bin:$PATH \
    XGATE_CONFIG=/etc/xgate/xgate.toml \
    XGATE_SECRETS_DIR=/run/secrets \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER xgate
WORKDIR /var/lib/xgate
# the SQLite outbox and import state. Relative storage paths are read from the configuration's folder, and
# /etc/xgate/var is this folder: the defaults (sqlite:///var/xgate.db, state_dir "var") land here too
VOLUME /var/lib/xgate
EXPOSE 8080
# GET /readyz on the port the configuration names (python's urllib: no curl in the image)
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 CMD ["python", "-m", "xgate.healthcheck"]
# serve drains in-flight batches on SIGTERM (docker stop); give it more than the default 10 s with
# `docker stop -t 40` / compose's stop_grace_period
STOPSIGNAL SIGTERM
# xgate is the container's process: its exit status is the container's (README, "Exit statuses"), 75 when
# the outbox could not be reached (a restart helps later), 78 when only the operator can (the configuration,
# an outbox schema of another version: xgate db upgrade). Restart policies are the runtime's (compose.yaml)
ENTRYPOINT ["xgate"]
# inside a container the gateway listens on every address; the port comes from [server] port
CMD ["serve", "--host", "0.0.0.0"]
