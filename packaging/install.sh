#!/usr/bin/env bash
# Install tierlb's system services on this machine (as root): the tierlb user, /etc/tierlb with the shipped configs
# (existing files are kept), /usr/local/bin/tierlb pointing at this checkout, the two units. Does not start anything:
#   systemctl enable --now tierlb-director     # on a director
#   systemctl enable --now tierlb-listeners    # on an LB node
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
top="$(dirname "$here")"
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (it writes /etc and /usr/local)" >&2; exit 1; }
[ -f "$top/dist/cli/main.js" ] || { echo "install.sh: build first: (cd $top && npm ci && npm run build)" >&2; exit 1; }

install -D -m 0644 "$here/systemd/tierlb.sysusers.conf" /usr/lib/sysusers.d/tierlb.conf
install -D -m 0644 "$here/systemd/tierlb.tmpfiles.conf" /usr/lib/tmpfiles.d/tierlb.conf
if command -v systemd-sysusers >/dev/null; then systemd-sysusers tierlb.conf
elif ! id tierlb >/dev/null 2>&1; then useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin tierlb; fi

install -d -m 0755 /etc/tierlb
for f in director.yaml listeners.yaml; do
  [ -e "/etc/tierlb/$f" ] || install -m 0644 "$top/config/$f" "/etc/tierlb/$f"
done
# the units' sockets: /run/tierlb/director.sock and the listeners' control socket (set `control:` to match)
sed -i 's#^\(\s*control:\s*\).*#\1/run/tierlb/listeners.sock#' /etc/tierlb/listeners.yaml

ln -sfn "$top/bin/tierlb.js" /usr/local/bin/tierlb
install -m 0644 "$here/systemd/tierlb-director.service" "$here/systemd/tierlb-listeners.service" /etc/systemd/system/
if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
echo "installed: tierlb user, /etc/tierlb, /usr/local/bin/tierlb, tierlb-director.service, tierlb-listeners.service"
