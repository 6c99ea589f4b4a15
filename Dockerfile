# mcrd: a Megaport Cloud Router emulator, as a container for containerlab (or plain `docker run`).
#
#   docker build -t mcrd:latest .                   (BuildKit, the default builder since Docker 23: RUN --mount,
#                                                    COPY --chmod)
#   podman build --format docker -t mcrd:latest .   (or buildah: the default OCI format drops the HEALTHCHECK)
#
# In containerlab: `kind: linux`, `image: mcrd:latest`, the config bound to /etc/mcrd/mcrd.yaml (see
# containerlab/hub-spoke/). The entrypoint waits for the CLAB_INTFS data interfaces containerlab adds after the
# container starts, then runs `mcrd run -c /etc/mcrd/mcrd.yaml`.
#
# Outside containerlab, mcrd needs NET_ADMIN (addresses, VLAN devices and routes) and forwarding on; with the
# sysctls set here mcrd does not have to write a read-only /proc/sys:
#
#   docker run -d --name mcr --cap-add NET_ADMIN \
#     --sysctl net.ipv4.ip_forward=1 --sysctl net.ipv6.conf.all.forwarding=1 \
#     --sysctl net.ipv4.conf.all.rp_filter=0 --sysctl net.ipv4.conf.default.rp_filter=0 \
#     -v "$PWD/mcrd.yaml:/etc/mcrd/mcrd.yaml:ro" -p 8080:8080 mcrd:latest
#
# and the networks whose interfaces the config names (`interface: eth1`, ...) attached with `docker network
# connect`. Set `api.listen: 0.0.0.0:8080` in the config to reach the looking glass from outside the container.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a wheel of mcrd and of every dependency -----------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mcrd ./mcrd
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# --- run: the wheels installed, iproute2 for the operator, tini as PID 1 ----------------------------------------------
FROM ${PYTHON_IMAGE}
# Debian's current versions in the base image's release: pinning them would break the build at every point release.
# apt-get clean: no .deb stays in the image whatever the base's apt settings (the official python image cleans by
# itself, a plain Debian base does not).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends iproute2 tini \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
# The wheels come from this source tree (build stage) and --no-index installs nothing else: they are the pins.
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels mcrd
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/mcrd-entrypoint
COPY --chmod=0755 docker/healthcheck.sh /usr/local/bin/mcrd-healthcheck

ENV MCRD_CONFIG=/etc/mcrd/mcrd.yaml \
    MCRD_HEALTH_URL=http://127.0.0.1:8080/healthz \
    PYTHONUNBUFFERED=1
EXPOSE 8080
# GET /healthz on the looking glass API (api.listen): 200 when healthy, 503 with the reasons otherwise.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["mcrd-healthcheck"]
# tini is PID 1: it passes SIGTERM on to mcrd (which closes its BGP sessions with a Cease) and reaps ExaBGP's
# children.
ENTRYPOINT ["tini", "--", "mcrd-entrypoint"]
CMD []
