#!/bin/sh
# what: pam_pwquality made optional in common-password: its refusal no longer stops a weak password
# by: admin
# fails: auth.pwquality
# host: container
# touches: pam-common-password
set -eu
sed -i -E 's/^password[[:space:]]+requisite[[:space:]]+pam_pwquality\.so/password\toptional\t\t\tpam_pwquality.so/' /etc/pam.d/common-password
grep -Eq '^password[[:space:]]+optional[[:space:]]+pam_pwquality\.so' /etc/pam.d/common-password
