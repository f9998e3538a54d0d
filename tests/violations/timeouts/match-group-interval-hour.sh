#!/bin/sh
# what: a Match Group sudo block gives the administrators a one-hour ClientAliveInterval
# by: admin
# fails: timeouts.ssh_client_alive
# host: container
set -eu
printf 'Match Group sudo\n\tClientAliveInterval 3600\n' > /etc/ssh/sshd_config.d/20-admins.conf
sshd -t
systemctl reload ssh
