#!/bin/sh
# what: Defaults>root !use_pty: commands run as root get no pseudo-terminal
# by: admin
# fails: admin.sudo_logging
# host: container
# touches: sudoers-d-logging
set -eu
printf 'Defaults>root !use_pty\n' > /etc/sudoers.d/zz-nopty
chmod 0440 /etc/sudoers.d/zz-nopty
visudo -c >/dev/null
