#!/bin/sh
# what: TMOUT raised to 4 hours in the tool's profile script
# by: admin
# fails: timeouts.shell_tmout
# host: container
# touches: tmout-script
set -eu
sed -i 's/TMOUT=[0-9]*;/TMOUT=14400;/' /etc/profile.d/hardening-timeouts.sh
