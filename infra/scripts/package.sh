#!/usr/bin/env bash
# Builds the deployment package for the az CLI path (docs/deploy.md): npm run build stages it in dist/package
# (host.json, a package.json with "main" and "type" only, and the bundled function: one file and its source map,
# no node_modules; the same folder azd deploys), zipped here at .deploy/defender-incident-export.zip.
# Usage: bash infra/scripts/package.sh   then   az functionapp deployment source config-zip --src <zip> ...
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=dist/package
zipfile="$PWD/.deploy/defender-incident-export.zip"
rm -rf .deploy && mkdir -p .deploy

npm run --silent build

# The package must load on its own, without node_modules: checked in a copy outside the repository, where no
# parent folder's node_modules can help (outside the host the library only warns that it registers nothing).
check="$(mktemp -d)"
trap 'rm -rf "$check"' EXIT
cp -R "$stage/." "$check/"
if ! (cd "$check" && node -e "require('./' + require('./package.json').main.replace('*', 'exportIncidents'))" >/dev/null 2>load.log); then
  cat "$check/load.log" >&2
  echo "package: the function entry does not load from the package" >&2
  exit 1
fi

command -v zip >/dev/null || { echo "package: 'zip' is required (apt install zip); the staged package is in $stage" >&2; exit 1; }
(cd "$stage" && zip -qr -X "$zipfile" .)
echo "package: $zipfile ($(du -h "$zipfile" | cut -f1))"
