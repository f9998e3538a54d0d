#!/bin/sh
# what: pwquality.conf says enforcing = 0: pam_pwquality only warns and any password is set
# by: admin
# fails: auth.pwquality
# host: container
# touches: pwquality-conf
set -eu
sed -i -E 's/^[[:space:]]*enforcing[[:space:]]*=.*/enforcing = 0/' /etc/security/pwquality.conf
grep -q '^enforcing = 0$' /etc/security/pwquality.conf
