#!/bin/sh
# After an install or an upgrade (deb: "configure" [old version]; rpm: 1
# or 2): systemd is told of the unit, and an upgrade restarts a running
# egressgate on the new binary. A first install starts nothing: edit
# /etc/egressgate first, then `systemctl enable --now egressgate`.
[ -d /run/systemd/system ] || exit 0
systemctl daemon-reload || true
case "$1" in
configure) [ -z "${2:-}" ] || systemctl try-restart egressgate.service || true ;;
2) systemctl try-restart egressgate.service || true ;;
esac
exit 0
