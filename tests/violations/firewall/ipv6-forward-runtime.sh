#!/bin/sh
# what: IPv6 forwarding switched on at runtime (sysctl -w), the sysctl.d files unchanged
# by: intruder
# fails: firewall.forwarding_off
# host: container
# touches: sysctl-forward-runtime
set -eu
sysctl -q -w net.ipv6.conf.all.forwarding=1
