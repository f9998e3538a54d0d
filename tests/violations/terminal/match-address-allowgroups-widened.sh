#!/bin/sh
# what: a Match Address block lets the users group in from one network (AllowGroups widened for it)
# by: admin
# fails: terminal.ssh_allow_groups
# host: container
# touches: sshd-main-config
set -eu
getent group users >/dev/null
printf 'Match Address 10.0.0.0/8\n\tAllowGroups sudo users\n' >> /etc/ssh/sshd_config
sshd -t
systemctl reload ssh
