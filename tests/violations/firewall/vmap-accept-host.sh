#!/bin/sh
# what: a verdict map accepts everything (SSH included) from one outside address
# by: intruder
# fails: firewall.ssh_management_only firewall.nothing_else_accepted firewall.boot_ruleset_current
# host: container
# touches: nft-hardening-table
set -eu
nft insert rule inet hardening input ip saddr vmap '{ 192.0.2.1 : accept }'
