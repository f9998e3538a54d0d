#!/bin/sh
# what: an included Match User block for every name except root sets AllowGroups * (any group)
# by: intruder
# fails: terminal.ssh_allow_groups
# host: container
set -eu
printf 'Match User *,!root\n\tAllowGroups *\n' > /etc/ssh/sshd_config.d/90-any.conf
sshd -t
systemctl reload ssh
