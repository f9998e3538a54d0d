#!/bin/sh
# what: the bulk-read monitor stopped and disabled: no warning however much personal data is copied
# by: intruder
# fails: bulkwatch.monitor_running
# host: vm
set -eu
systemctl disable --now hardening-bulkwatch.service
