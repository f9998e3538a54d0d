#!/bin/sh
# what: the input chain's policy switched to accept at runtime (the file still says drop)
# by: admin
# fails: firewall.input_policy_drop firewall.nothing_else_accepted firewall.boot_ruleset_current
# host: container
# touches: nft-hardening-table
set -eu
nft chain inet hardening input '{ policy accept; }'
