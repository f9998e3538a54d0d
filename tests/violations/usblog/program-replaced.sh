#!/bin/sh
# what: the monitor program replaced by one that runs and logs nothing, restarted: the service looks healthy
# by: intruder
# fails: usblog.monitor_program
# host: vm
# touches: usblog-service
set -eu
printf 'import time\nwhile True:\n    time.sleep(3600)\n' > /usr/local/lib/hardening/usblog_monitor.py
systemctl restart hardening-usblog.service
