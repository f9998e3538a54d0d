#!/bin/sh
# what: a drop-in sorted before the tool's allows hmac-sha1 for an old client
# by: admin
# fails: encryption.ssh_macs
# host: container
set -eu
printf 'MACs hmac-sha2-256,hmac-sha2-512,hmac-sha1\n' > /etc/ssh/sshd_config.d/02-old-client.conf
sshd -t
systemctl reload ssh
