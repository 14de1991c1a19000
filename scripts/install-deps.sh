#!/usr/bin/env bash
# Debian packages tierlb needs at run time and for its tests. Idempotent; run as root.
set -euo pipefail
PKGS=(iproute2 iptables nftables tcpdump tshark keepalived haproxy nginx-light wrk curl netcat-openbsd python3-scapy
  conntrack ethtool procps psmisc iputils-ping
  # the L4 fast path: clang compiles the tc BPF program (npm run build), libbpf-dev has its headers, libbpf1 loads it
  clang libbpf-dev libbpf1 bpftool
  # npm run bench:l4 floods with trafgen
  netsniff-ng)
# the routing daemon the directors announce their VIPs with (bgp section; BIRD 2: birdc, BFD built in)
PKGS+=(bird2)
# HTTPS/HTTP2 listener tests and bench:tls (openssl s_client, h2load); the runtime API's socat one-liners;
# the status page's browser test (Debian's chromium, driven headless by puppeteer-core: no browser download)
PKGS+=(openssl nghttp2-client socat chromium)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# tshark asks whether non-root users may capture; we run as root, the default answer is fine.
# the distribution starts services on install; tierlb starts its own instances in namespaces
for s in haproxy nginx keepalived; do systemctl stop "$s" 2>/dev/null || service "$s" stop 2>/dev/null || true; done
systemctl stop bird 2>/dev/null || service bird stop 2>/dev/null || true
