#!/bin/sh
# what: faillock.conf says deny = 0: pam_faillock never locks an account
# by: admin
# fails: auth.faillock_settings
# host: container
# touches: faillock-conf
set -eu
sed -i -E 's/^[[:space:]]*deny[[:space:]]*=.*/deny = 0/' /etc/security/faillock.conf
grep -q '^deny = 0$' /etc/security/faillock.conf
