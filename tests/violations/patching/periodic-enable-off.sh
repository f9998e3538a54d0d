#!/bin/sh
# what: APT::Periodic::Enable "0" in 99-local switches apt.systemd.daily off (no list update, no upgrade) while 20auto-upgrades still says "1"
# by: intruder
# fails: patching.unattended_upgrades_enabled
# host: container
# touches: apt-99-local
set -eu
printf '// quiet apt\nAPT::Periodic::Enable "0";\n' > /etc/apt/apt.conf.d/99-local
