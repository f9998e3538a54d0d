#!/bin/sh
# what: nftables.service disabled: the ruleset is live now but nothing loads it at the next boot
# by: admin
# fails: firewall.nftables_enabled
# host: container
# touches: nftables-service
set -eu
systemctl disable --quiet nftables.service
