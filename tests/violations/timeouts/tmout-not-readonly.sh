#!/bin/sh
# what: the readonly is taken out of the TMOUT script, so a user can unset TMOUT
# by: intruder
# fails: timeouts.shell_tmout
# host: container
# touches: tmout-script
set -eu
sed -i 's/readonly TMOUT; //' /etc/profile.d/hardening-timeouts.sh
