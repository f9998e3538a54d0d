#!/bin/sh
# what: /tmp remounted exec at run time to let an installer run from it, and left so
# by: admin
# fails: tmpdata.tmp_mount_options
# host: container
set -eu
mount -o remount,exec /tmp
findmnt -n -o OPTIONS -T /tmp | grep -vq noexec
