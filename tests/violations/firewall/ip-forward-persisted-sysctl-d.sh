#!/bin/sh
# what: a sysctl.d file sorting after the tool's switches IPv4 forwarding on at the next boot
# by: admin
# fails: firewall.forwarding_off_at_boot
# host: container
# touches: sysctl-forward-boot
set -eu
printf '# router test\nnet.ipv4.ip_forward = 1\n' > /etc/sysctl.d/99-router.conf
