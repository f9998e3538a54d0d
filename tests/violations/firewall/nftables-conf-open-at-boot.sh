#!/bin/sh
# what: /etc/nftables.conf edited to policy accept and not loaded: live is fine, the next boot is open
# by: admin
# fails: firewall.boot_ruleset_current
# host: container
# touches: nftables-conf
set -eu
sed -i 's/hook input priority filter; policy drop;/hook input priority filter; policy accept;/' /etc/nftables.conf
grep -q 'hook input priority filter; policy accept;' /etc/nftables.conf
