#!/usr/bin/env bash
# Installs the Debian packages syncd's setup needs when they are missing (fresh machine).
# Nothing here is needed by hand: `make demo` and `make test` call it.
#   --test   also what the test suite's local servers need (Dovecot for the IMAP tests)
set -euo pipefail

missing=()
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v make >/dev/null || missing+=(make)
if [[ ${1:-} == --test ]]; then
  command -v dovecot >/dev/null || [[ -x /usr/sbin/dovecot ]] || missing+=(dovecot-imapd)
fi

if ((${#missing[@]})); then
  sudo=
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  echo "installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
