#!/bin/sh
# what: the classic /etc/sysctl.conf line switching IPv4 forwarding on at the next boot
# by: admin
# fails: firewall.forwarding_off_at_boot
# host: container
# touches: sysctl-forward-boot
set -eu
echo 'net.ipv4.ip_forward=1' >> /etc/sysctl.conf
