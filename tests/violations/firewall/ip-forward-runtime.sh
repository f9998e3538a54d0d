#!/bin/sh
# what: IPv4 forwarding switched on at runtime (sysctl -w), the sysctl.d files unchanged
# by: admin
# fails: firewall.forwarding_off
# host: container
# touches: sysctl-forward-runtime
set -eu
sysctl -q -w net.ipv4.ip_forward=1
