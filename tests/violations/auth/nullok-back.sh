#!/bin/sh
# what: nullok back on pam_unix in common-auth (as Debian ships it): an account with an empty password logs in
# by: upgrade
# fails: auth.pam_refuses_empty_passwords
# host: container
# touches: pam-common-auth
set -eu
sed -i -E 's/(pam_unix\.so) try_first_pass/\1 nullok try_first_pass/' /etc/pam.d/common-auth
grep -q 'pam_unix.so nullok try_first_pass' /etc/pam.d/common-auth
