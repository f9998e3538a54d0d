#!/bin/sh
# what: logind runs with IdleAction=ignore from a drop-in since removed; the files say lock, the daemon was not told
# by: admin
# fails: timeouts.logind_idle_action
# host: vm
# touches: logind-dropins
set -eu
printf '[Login]\nIdleAction=ignore\n' > /etc/systemd/logind.conf.d/zz-test.conf
systemctl kill --kill-whom=main -s HUP systemd-logind.service
sleep 1
rm -f /etc/systemd/logind.conf.d/zz-test.conf
