#!/bin/sh
# what: the dconf locks on the screen-lock keys are removed, so users can switch the lock off
# by: intruder
# fails: timeouts.screen_lock
# host: vm
# touches: dconf
set -eu
rm -f /etc/dconf/db/local.d/locks/hardening-timeouts
dconf update
