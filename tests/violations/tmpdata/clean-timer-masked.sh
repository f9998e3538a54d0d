#!/bin/sh
# what: systemd-tmpfiles-clean.timer masked and stopped, so nothing old is ever deleted
# by: intruder
# fails: tmpdata.cleanup_timer
# host: container
set -eu
systemctl mask --now systemd-tmpfiles-clean.timer
