#!/bin/sh
# what: apt-daily-upgrade.timer stopped but still enabled (the files say on, the running state is off until the next boot)
# by: admin
# fails: patching.update_timers_enabled
# host: container
# touches: apt-daily-upgrade-timer
set -eu
systemctl stop apt-daily-upgrade.timer
test "$(systemctl is-enabled apt-daily-upgrade.timer)" = enabled
