#!/bin/sh
# what: a package script flushes the whole ruleset (nft flush ruleset): no firewall until reboot
# by: upgrade
# fails: firewall.input_policy_drop firewall.ssh_management_only firewall.nothing_else_accepted firewall.boot_ruleset_current firewall.forwarding_off
# host: container
# touches: nft-hardening-table
set -eu
nft flush ruleset
