#!/bin/sh
# what: a regular chain that accepts a backdoor port, reached by a jump inserted first in input
# by: intruder
# fails: firewall.nothing_else_accepted firewall.boot_ruleset_current
# host: container
# touches: nft-hardening-table
set -eu
nft add chain inet hardening maint
nft add rule inet hardening maint tcp dport 4444 accept
nft insert rule inet hardening input jump maint
