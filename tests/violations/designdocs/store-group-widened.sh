#!/bin/sh
# what: the design-document store handed to group staff, so that everyone in the office can read the diagrams
# by: admin
# fails: designdocs.not_readable_beyond_group
# host: container
set -eu
chgrp staff /srv/design-documents
