#!/bin/sh
# what: Defaults!/usr/bin/bash !logfile: a root shell through sudo is not in the log file (per-command Defaults are applied last)
# by: intruder
# fails: admin.sudo_logging
# host: container
# touches: sudoers-d-logging
set -eu
printf 'Defaults!/usr/bin/bash, /bin/bash !logfile\n' > /etc/sudoers.d/aa-shells
chmod 0440 /etc/sudoers.d/aa-shells
visudo -c >/dev/null
