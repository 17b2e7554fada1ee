#!/usr/bin/env bash
# Install the Debian packages the training corpus is built from (python -m codec.data.corpus).
# Idempotent: packages already installed are skipped; run as root (or through sudo).
#
#   sudo scripts/install_corpus_packages.sh              # the corpus sources (about 1.3 GB)
#   sudo scripts/install_corpus_packages.sh --heldout    # also the reserved evaluation packages
#
# EXTRA holds the sources built into their own folders on request (opl3-soundfont:
# `python -m codec.data.corpus build --only opl3-render --out data/corpus_opl3`).
#
# The reserved packages (timgm6mb-soundfont, musescore-general-soundfont, fillets-ng-data-nl,
# qabcs-data) are for independent evaluation only: `build` never reads them.
set -euo pipefail

SOURCES=(
  fluid-soundfont-gm espeak-ng
  fillets-ng-data-cs klettres-data ktuberling-data gcin-voice
  asterisk-core-sounds-en-wav asterisk-core-sounds-es-wav asterisk-core-sounds-fr-wav
  asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav
  ufoai-sound hedgewars-data scratch colobot-common-sounds avldrums.lv2-soundfont
  hydrogen-drumkits-effects
  warzone2100-music wesnoth-1.16-music
)
EXTRA=(opl3-soundfont)
RESERVED=(timgm6mb-soundfont musescore-general-soundfont fillets-ng-data-nl qabcs-data)

packages=("${SOURCES[@]}" "${EXTRA[@]}")
case "${1:-}" in
  "") ;;
  --heldout) packages+=("${RESERVED[@]}") ;;
  -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--heldout]" >&2; exit 2 ;;
esac

if [[ "$(id -u)" -ne 0 ]]; then
  echo "error: run as root (sudo $0 $*): apt-get needs it" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "all ${#packages[@]} corpus packages are installed"
  exit 0
fi
echo "installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y --no-install-recommends "${missing[@]}"
