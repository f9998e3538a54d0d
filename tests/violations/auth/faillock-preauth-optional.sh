#!/bin/sh
# what: the pam_faillock preauth line in common-auth made optional: a locked account logs in again
# by: admin
# fails: auth.faillock_in_pam_stack
# host: container
# touches: pam-common-auth
set -eu
sed -i -E 's/^auth[[:space:]]+requisite[[:space:]]+pam_faillock\.so preauth/auth\toptional\t\t\tpam_faillock.so preauth/' /etc/pam.d/common-auth
grep -Eq '^auth[[:space:]]+optional[[:space:]]+pam_faillock\.so preauth' /etc/pam.d/common-auth
