#!/bin/sh
# what: a logind drop-in read after the tool's sets IdleAction=ignore, and logind re-read it
# by: admin
# fails: timeouts.logind_idle_action
# host: vm
# touches: logind-dropins
set -eu
printf '[Login]\nIdleAction=ignore\n' > /etc/systemd/logind.conf.d/zz-local.conf
systemctl kill --kill-whom=main -s HUP systemd-logind.service
sleep 1
