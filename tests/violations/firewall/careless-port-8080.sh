#!/bin/sh
# what: an admin opens a test web port for everyone in the tool's own input chain and forgets it
# by: admin
# fails: firewall.nothing_else_accepted firewall.boot_ruleset_current
# host: container
# touches: nft-hardening-table
set -eu
nft add rule inet hardening input tcp dport 8080 accept comment '"test web"'
