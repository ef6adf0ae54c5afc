#!/usr/bin/env bash
# Capstan installer for a VPS — NOT IMPLEMENTED YET.
#
# The install issue (systemd unit, idempotent re-runs, upgrades without app downtime, no
# default password) has not been taken yet. Until then, build from source and run the
# daemon yourself: see README.md ("Run it").
echo "install.sh is a placeholder: the installer is not written yet; see README.md" >&2
exit 1
