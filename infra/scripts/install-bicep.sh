#!/usr/bin/env bash
# Installs the real Bicep CLI from NuGet (Azure.Bicep.CommandLine.linux-x64 ships the `bicep` executable) into a
# cache folder and prints its path. The npm registry has no Bicep compiler; the .NET SDK and a NuGet registry do.
# Usage: BICEP="$(bash infra/scripts/install-bicep.sh)"
set -euo pipefail

BICEP_VERSION="${BICEP_VERSION:-0.49.2}"
CACHE="${DEFENDER_EXPORT_BICEP_HOME:-$HOME/.cache/defender-incident-export/bicep-$BICEP_VERSION}"
BICEP="$CACHE/packages/azure.bicep.commandline.linux-x64/$BICEP_VERSION/tools/bicep"

if [ ! -x "$BICEP" ]; then
  command -v dotnet >/dev/null || { echo "install-bicep: the .NET SDK (dotnet) is required to fetch Bicep from NuGet" >&2; exit 1; }
  mkdir -p "$CACHE"
  # A project that only downloads the package: nothing is built, nothing lands outside $CACHE.
  cat > "$CACHE/bicep-download.csproj" <<PROJ
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><TargetFramework>net$(dotnet --version | cut -d. -f1).0</TargetFramework></PropertyGroup>
  <ItemGroup><PackageDownload Include="Azure.Bicep.CommandLine.linux-x64" Version="[$BICEP_VERSION]" /></ItemGroup>
</Project>
PROJ
  dotnet restore "$CACHE/bicep-download.csproj" --packages "$CACHE/packages" >&2
  chmod +x "$BICEP"
fi
"$BICEP" --version >&2
echo "$BICEP"
