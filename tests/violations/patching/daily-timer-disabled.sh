#!/bin/sh
# what: apt-daily.timer disabled and stopped (package lists never refreshed), as an admin does to stop apt's background traffic
# by: admin
# fails: patching.update_timers_enabled
# host: container
# touches: apt-daily-timer
set -eu
systemctl disable --now apt-daily.timer >/dev/null 2>&1
test "$(systemctl is-active apt-daily.timer || true)" = inactive
