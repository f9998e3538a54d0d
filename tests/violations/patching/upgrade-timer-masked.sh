#!/bin/sh
# what: apt-daily-upgrade.timer masked and stopped: unattended-upgrades never runs although its configuration is intact
# by: intruder
# fails: patching.update_timers_enabled
# host: container
# touches: apt-daily-upgrade-timer
set -eu
systemctl mask --now apt-daily-upgrade.timer >/dev/null 2>&1
test "$(systemctl is-enabled apt-daily-upgrade.timer || true)" = masked
