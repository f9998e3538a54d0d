#!/bin/sh
# what: Defaults:hardening !logfile in a file read after the tool's: the deploy account's sudo commands leave the log file
# by: intruder
# fails: admin.sudo_logging
# host: container
# touches: sudoers-d-logging
set -eu
printf 'Defaults:hardening !logfile\n' > /etc/sudoers.d/zz-quiet
chmod 0440 /etc/sudoers.d/zz-quiet
visudo -c >/dev/null
