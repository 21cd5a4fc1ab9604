#!/usr/bin/env bash
# Builds the deployment package for the az CLI path (docs/deploy.md): host.json, package.json, the compiled
# dist/src and production node_modules, zipped at .deploy/defender-incident-export.zip.
# Usage: bash infra/scripts/package.sh   then   az functionapp deployment source config-zip --src <zip> ...
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=.deploy/package
zipfile="$PWD/.deploy/defender-incident-export.zip"
rm -rf .deploy && mkdir -p "$stage"

npm run --silent build
cp host.json package.json package-lock.json "$stage/"
mkdir -p "$stage/dist" && cp -R dist/src "$stage/dist/src"
(cd "$stage" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)

# The package must load on its own: every module and dependency of the function resolves (outside the host
# the library runs in test mode and only warns that it registers nothing).
if ! (cd "$stage" && node -e "require('./dist/src/functions/exportIncidents.js')" >/dev/null 2>.load.log); then
  cat "$stage/.load.log" >&2
  echo "package: dist/src/functions/exportIncidents.js does not load from the package" >&2
  exit 1
fi
rm -f "$stage/.load.log"

command -v zip >/dev/null || { echo "package: 'zip' is required (apt install zip); the staged package is in $stage" >&2; exit 1; }
(cd "$stage" && zip -qr -X "$zipfile" .)
echo "package: $zipfile ($(du -h "$zipfile" | cut -f1))"
