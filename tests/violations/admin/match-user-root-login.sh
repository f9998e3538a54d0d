#!/bin/sh
# what: a Match block at the end of sshd_config lets root log in with a password from a maintenance network
# by: intruder
# fails: admin.root_login_ssh
# host: container
# touches: sshd-main-config
set -eu
printf 'Match User root Address 10.77.0.0/16\n\tPermitRootLogin yes\n' >> /etc/ssh/sshd_config
sshd -t
systemctl reload ssh
