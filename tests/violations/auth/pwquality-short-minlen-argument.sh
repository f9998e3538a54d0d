#!/bin/sh
# what: minlen=6 as an argument of pam_pwquality in common-password, which wins over pwquality.conf
# by: admin
# fails: auth.pwquality
# host: container
# touches: pam-common-password
set -eu
sed -i -E 's/(pam_pwquality\.so retry=3)/\1 minlen=6/' /etc/pam.d/common-password
grep -q 'pam_pwquality.so retry=3 minlen=6' /etc/pam.d/common-password
