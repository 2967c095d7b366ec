#!/bin/sh
# Before the package goes (deb: "remove"; rpm: 0), not before an upgrade:
# egressgate is stopped and disabled.
[ -d /run/systemd/system ] || exit 0
case "$1" in
remove | 0) systemctl disable --now egressgate.service || true ;;
esac
exit 0
