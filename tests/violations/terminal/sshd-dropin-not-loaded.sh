#!/bin/sh
# what: a drop-in added (or edited) without reloading sshd: the daemon still runs what it read before, whatever sshd -T says
# by: admin
# fails: terminal.sshd_running_current
# host: container
# order: last
set -eu
printf '# local banner, to be loaded at the next maintenance window\nBanner none\n' > /etc/ssh/sshd_config.d/50-local-banner.conf
