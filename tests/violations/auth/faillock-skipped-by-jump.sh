#!/bin/sh
# what: a pam_succeed_if line jumps over pam_faillock preauth for the sudo group ("admins must never be locked out")
# by: admin
# fails: auth.faillock_in_pam_stack
# host: container
# touches: pam-common-auth
set -eu
sed -i -E 's/^(auth[[:space:]]+requisite[[:space:]]+pam_faillock\.so preauth)/auth\t[success=1 default=ignore]\tpam_succeed_if.so quiet user ingroup sudo\n\1/' /etc/pam.d/common-auth
grep -q 'pam_succeed_if.so quiet user ingroup sudo' /etc/pam.d/common-auth
