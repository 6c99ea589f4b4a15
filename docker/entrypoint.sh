#!/bin/sh
# Entrypoint of the mcrd image (run by tini as PID 1).
#
# containerlab starts the container first and adds the data interfaces afterwards; it tells how many in CLAB_INTFS.
# Wait for them (MCRD_INTF_TIMEOUT seconds at most, default 60), saying so in the log, then run
# `mcrd run -c $MCRD_CONFIG` as the main process. Arguments that start with '-' go to `mcrd run` (for example
# `--log-level debug`); any other command line is run instead (for example `mcrd check /etc/mcrd/mcrd.yaml`).
set -eu

config="${MCRD_CONFIG:-/etc/mcrd/mcrd.yaml}"
timeout="${MCRD_INTF_TIMEOUT:-60}"

log() {
    printf '%s mcrd-entrypoint: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

# Data interfaces: the names containerlab gives a node's links, as its own wait script counts them (eth1..ethN by
# default; e1-1, ens*, eno* for other naming schemes), but not eth0, containerlab's management interface. Other
# devices are not counted: a kernel may create fallback tunnel devices (tunl0, sit0, gre0, erspan0, ip6tnl0, ...)
# in every new namespace, and they would end the wait before the links are there.
data_interfaces() {
    n=0
    for dev in /sys/class/net/*; do
        [ -e "$dev/ifindex" ] || continue
        case "${dev##*/}" in
            eth0) ;;
            eth[0-9]* | e[0-9]* | ens* | eno*) n=$((n + 1)) ;;
            *) ;;
        esac
    done
    echo "$n"
}

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
    exec "$@"
fi

want="${CLAB_INTFS:-0}"
case "$want" in
    '' | *[!0-9]*)
        log "CLAB_INTFS='$want' is not a number: not waiting for interfaces"
        want=0
        ;;
esac
case "$timeout" in
    '' | *[!0-9]*) timeout=60 ;;
esac

if [ "$want" -gt 0 ]; then
    log "waiting up to ${timeout}s for ${want} data interfaces (CLAB_INTFS)"
    waited=0
    have=$(data_interfaces)
    while [ "$have" -lt "$want" ] && [ "$waited" -lt "$timeout" ]; do
        sleep 1
        waited=$((waited + 1))
        have=$(data_interfaces)
    done
    if [ "$have" -ge "$want" ]; then
        log "${have} data interfaces present after ${waited}s"
    else
        log "only ${have} of ${want} data interfaces after ${timeout}s: starting anyway (mcrd waits for each VXC's interface)"
    fi
fi

if [ ! -r "$config" ]; then
    log "no config at ${config}: bind one there (containerlab: binds: [mcrd.yaml:/etc/mcrd/mcrd.yaml])"
    exit 1
fi
log "starting mcrd run -c ${config}"
exec mcrd run -c "$config" "$@"
