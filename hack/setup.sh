#!/usr/bin/env bash
# Installs what skiff needs on a fresh Debian machine (run as root). Idempotent: it installs
# only what is missing.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
need=()
command -v go >/dev/null || { echo "Go is required (expected at /usr/local/go)"; exit 1; }
[ -x /usr/bin/kubectl ] || echo "note: /usr/bin/kubectl not found; use ./bin/skiff kubectl"
# busybox-static: /bin/busybox is packed into the skiff.local/busybox test image (images/).
# docker-registry: a real registry on loopback for the image pull tests.
for pkg in containerd runc containernetworking-plugins iptables nftables conntrack iproute2 busybox-static docker-registry; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "missing packages ${need[*]}: run as root"; exit 1; fi
  echo "installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
echo "setup complete"
