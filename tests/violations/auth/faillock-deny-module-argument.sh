#!/bin/sh
# what: deny=0 as an argument of the authfail line in common-auth, which wins over faillock.conf
# by: admin
# fails: auth.faillock_settings
# host: container
# touches: pam-common-auth
set -eu
sed -i -E 's/(pam_faillock\.so authfail)$/\1 deny=0/' /etc/pam.d/common-auth
grep -q 'pam_faillock.so authfail deny=0' /etc/pam.d/common-auth
