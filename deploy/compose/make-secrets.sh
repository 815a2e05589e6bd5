#!/bin/sh
# Random secrets for compose.yaml, one file per variable, in deploy/compose/secrets/ (or the folder given).
# Existing files are kept: replace the XGATE_X_* ones with X's credentials to send to X for real.
# The folder is private (0700); the files are world-readable inside it, because a bind-mounted secret
# keeps its mode and the gateway runs as its own user (uid 10001) in the container.
set -eu
dir=${1:-$(dirname "$0")/secrets}
mkdir -p "$dir" && chmod 0700 "$dir"
for name in PGPASSWORD XGATE_WRITE_KEY_BACKEND XGATE_X_CONSUMER_KEY XGATE_X_CONSUMER_SECRET \
            XGATE_X_ACCESS_TOKEN XGATE_X_ACCESS_TOKEN_SECRET; do
  if [ ! -s "$dir/$name" ]; then
    (umask 022; python3 -c 'import secrets; print(secrets.token_urlsafe(24))' >"$dir/$name")
  fi
done
echo "secrets in $dir: $(ls "$dir" | tr '\n' ' ')"
