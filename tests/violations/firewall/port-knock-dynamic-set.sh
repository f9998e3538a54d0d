#!/bin/sh
# what: port knocking: a knock on 7777 adds the source to a dynamic set that accepts everything
# by: intruder
# fails: firewall.ssh_management_only firewall.nothing_else_accepted firewall.boot_ruleset_current
# host: container
# touches: nft-hardening-table
set -eu
nft add set inet hardening knock '{ type ipv4_addr; flags dynamic,timeout; timeout 1m; }'
nft insert rule inet hardening input ip saddr @knock accept
nft insert rule inet hardening input tcp dport 7777 add @knock '{ ip saddr }'
