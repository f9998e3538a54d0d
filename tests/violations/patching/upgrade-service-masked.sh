#!/bin/sh
# what: apt-daily-upgrade.service masked: its timer stays enabled and active, yet every trigger fails to start the service
# by: intruder
# fails: patching.update_timers_enabled
# host: container
# touches: apt-daily-upgrade-service
set -eu
systemctl mask apt-daily-upgrade.service >/dev/null 2>&1
test "$(systemctl is-active apt-daily-upgrade.timer)" = active
