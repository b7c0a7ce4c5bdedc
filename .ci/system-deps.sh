#!/usr/bin/env bash
# System packages the tests need beyond the Python environment: a real Alertmanager
# (tests/integration/alerting) and promtool (tests/unit/k8s/test_rules.py). Debian packages;
# installed only when missing. CI runs as root; elsewhere run it with sudo.
set -euo pipefail
missing=()
command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 \
  || missing+=(prometheus-alertmanager)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -eq 0 ]; then
  echo "system-deps: alertmanager and promtool present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: missing ${missing[*]}; run: sudo $0" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends: the binaries only; no service is started by the tests' use of them
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Debian's packages start system services on install; the tests run their own on free ports.
for svc in prometheus prometheus-alertmanager; do
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
done
echo "system-deps: installed ${missing[*]}"
