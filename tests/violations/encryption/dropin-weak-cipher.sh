#!/bin/sh
# what: a drop-in sorted before the tool's appends a CBC cipher to sshd's defaults (Ciphers +aes128-cbc)
# by: upgrade
# fails: encryption.ssh_ciphers
# host: container
set -eu
printf 'Ciphers +aes128-cbc\n' > /etc/ssh/sshd_config.d/01-legacy-clients.conf
sshd -t
systemctl reload ssh
