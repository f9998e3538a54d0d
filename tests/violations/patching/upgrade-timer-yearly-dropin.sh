#!/bin/sh
# what: a drop-in reschedules apt-daily-upgrade.timer to once a year: the timer stays enabled and active, unattended-upgrades runs on 1 January only
# by: intruder
# fails: patching.update_timers_enabled
# host: container
# touches: apt-daily-upgrade-timer
set -eu
mkdir -p /etc/systemd/system/apt-daily-upgrade.timer.d
printf '[Timer]\nOnCalendar=\nOnCalendar=*-01-01 00:00:00\nRandomizedDelaySec=0\n' > /etc/systemd/system/apt-daily-upgrade.timer.d/override.conf
systemctl daemon-reload
systemctl restart apt-daily-upgrade.timer
test "$(systemctl is-active apt-daily-upgrade.timer)" = active
