#!/bin/sh
# what: SSH accepted from anywhere ahead of the management-only rule
# by: admin
# fails: firewall.ssh_management_only firewall.nothing_else_accepted firewall.boot_ruleset_current
# host: container
# touches: nft-hardening-table
set -eu
nft insert rule inet hardening input tcp dport 22 accept
