#!/bin/sh
# what: root given a password again (within the ageing limit) for a console rescue, and left usable
# by: admin
# fails: admin.root_locked
# host: container
# touches: root-account
set -eu
echo 'root:Rescue-Console-2026!x' | chpasswd
chage -M 180 root
passwd -S root | grep -q ' P '
