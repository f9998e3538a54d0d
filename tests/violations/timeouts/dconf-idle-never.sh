#!/bin/sh
# what: the desktop idle delay set to 0 (never) in the system dconf database
# by: admin
# fails: timeouts.screen_lock
# host: vm
# touches: dconf
set -eu
sed -i 's/^idle-delay=.*/idle-delay=uint32 0/' /etc/dconf/db/local.d/00-hardening-timeouts
dconf update
