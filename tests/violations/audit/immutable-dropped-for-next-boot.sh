#!/bin/sh
# what: the -e 2 file removed from rules.d: the rules would be changeable after the next boot
# by: intruder
# fails: audit.rules_immutable
# host: vm
set -eu
rm -f /etc/audit/rules.d/99-zz-hardening-immutable.rules
