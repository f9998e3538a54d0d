#!/bin/sh
# what: PASS_MAX_DAYS raised to 99999 in login.defs: new passwords never expire
# by: admin
# fails: auth.password_ageing
# host: container
# touches: login-defs
set -eu
sed -i -E 's/^[[:space:]]*PASS_MAX_DAYS[[:space:]].*/PASS_MAX_DAYS\t99999/' /etc/login.defs
grep -q '^PASS_MAX_DAYS.99999$' /etc/login.defs
