#!/bin/sh
# what: Defaults:%sudo !log_allowed: no command an administrator runs is logged anywhere
# by: intruder
# fails: admin.sudo_logging
# host: container
# touches: sudoers-d-logging
set -eu
printf 'Defaults:%%sudo !log_allowed\n' > /etc/sudoers.d/zz-silence
chmod 0440 /etc/sudoers.d/zz-silence
visudo -c >/dev/null
