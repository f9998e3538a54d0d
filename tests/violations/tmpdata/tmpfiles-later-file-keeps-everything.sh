#!/bin/sh
# what: a tmpfiles.d file read after the tool's excludes everything under /tmp from the clean-up ("x /tmp/*")
# by: admin
# fails: tmpdata.tmp_ageing
# host: container
# touches: tmpfiles-tmp
set -eu
printf '# keep build artefacts between runs\nx /tmp/*\n' > /etc/tmpfiles.d/zz-keep-tmp.conf
