#!/bin/sh
# what: ENCRYPT_METHOD set to MD5 in login.defs (an old howto for a legacy application)
# by: admin
# fails: auth.password_hash
# host: container
# touches: login-defs
set -eu
sed -i -E 's/^[[:space:]]*ENCRYPT_METHOD[[:space:]].*/ENCRYPT_METHOD MD5/' /etc/login.defs
grep -q '^ENCRYPT_METHOD MD5$' /etc/login.defs
