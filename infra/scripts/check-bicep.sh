#!/usr/bin/env bash
# Compiles and lints infra/main.bicep with the real Bicep CLI. Every compiler diagnostic (BCP...) and every linter
# rule that bicepconfig.json sets to error fails the check; use-recent-api-versions stays a printed warning, so
# that the calendar alone never breaks CI. Usage: BICEP=/path/to/bicep bash infra/scripts/check-bicep.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BICEP="${BICEP:-bicep}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

log="$out/bicep.log"
"$BICEP" build infra/main.bicep --outfile "$out/main.json" 2>&1 | tee "$log"
"$BICEP" lint infra/main.bicep 2>&1 | tee -a "$log"
if grep -Eq '(Error [A-Za-z0-9-]+|Warning BCP[0-9]+):' "$log"; then
  echo "check-bicep: the Bicep compiler or linter reported the findings above" >&2
  exit 1
fi
echo "check-bicep: infra/main.bicep compiles and lints clean"
