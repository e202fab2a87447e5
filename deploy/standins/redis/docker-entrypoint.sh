#!/bin/sh
# STAND-IN for the official redis image's entrypoint (no registry reachable on this machine):
# `redis-server` without a config file gets `--protected-mode no` (so other containers may
# connect), and runs as the redis user owning /data.
set -eu
if [ "${1:-}" = redis-server ]; then
    case "${2:-}" in
        *.conf) ;;
        *) shift; set -- redis-server --protected-mode no "$@" ;;
    esac
    if [ "$(id -u)" = 0 ]; then
        chown -R redis:redis /data
        exec setpriv --reuid=redis --regid=redis --init-groups "$@"
    fi
fi
exec "$@"
