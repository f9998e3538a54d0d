#!/bin/sh
# what: a second PASS_MAX_DAYS line appended at the end of login.defs (getdef.c: the last one wins)
# by: admin
# fails: auth.password_ageing
# host: container
# touches: login-defs
set -eu
printf '\n# local policy\nPASS_MAX_DAYS 99999\n' >> /etc/login.defs
