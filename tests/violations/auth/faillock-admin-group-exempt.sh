#!/bin/sh
# what: admin_group = sudo in faillock.conf: administrators are never locked out, whatever deny says
# by: admin
# fails: auth.faillock_settings
# host: container
# touches: faillock-conf
set -eu
printf '\n# admins must never be locked out\nadmin_group = sudo\n' >> /etc/security/faillock.conf
