#!/bin/sh
# what: a rule hands the traffic to a backdoor port to a userspace program (queue), which decides instead of the firewall
# by: intruder
# fails: firewall.nothing_else_accepted firewall.boot_ruleset_current
# host: vm
# touches: nft-hardening-table
set -eu
nft insert rule inet hardening input tcp dport 4444 queue num 7 bypass
