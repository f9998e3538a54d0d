#!/bin/sh
# what: a Match Address block at the end of sshd_config switches the keepalive off for one network
# by: intruder
# fails: timeouts.ssh_client_alive
# host: container
# touches: sshd-main-config
set -eu
printf 'Match Address 10.9.0.0/16,!10.9.1.0/24\n\tClientAliveInterval 0\n' >> /etc/ssh/sshd_config
sshd -t
systemctl reload ssh
