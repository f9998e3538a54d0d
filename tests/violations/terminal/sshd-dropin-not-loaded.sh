#!/bin/sh
# what: a drop-in added (or edited) without reloading sshd: the daemon still runs what it read before, whatever sshd -T says
# by: admin
# fails: terminal.sshd_running_current
# host: container
# order: last
set -eu
# A violation planted just before may have reloaded sshd: systemctl returns once the HUP is sent,
# and sshd rewrites its pid file only when it has re-executed, which under load can come after
# this file is written (then sshd really did read it; seen in CI). Wait until the pid file has
# been left alone for two seconds, as an administrator's later edit would be.
i=0
while [ $(( $(date +%s) - $(stat -c %Y /run/sshd.pid) )) -lt 2 ] && [ $i -lt 60 ]; do sleep 1; i=$((i + 1)); done
printf '# local banner, to be loaded at the next maintenance window\nBanner none\n' > /etc/ssh/sshd_config.d/50-local-banner.conf
