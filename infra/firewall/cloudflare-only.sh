#!/bin/sh
# Lets only Cloudflare reach the ports Docker publishes for Traefik (80 and 443).
#
# Docker publishes a container port by rewriting the destination of its packets before ufw sees
# them: they are forwarded to the container and never meet ufw's input rules, so "allow only
# Cloudflare" written in ufw leaves 443 open to anyone. DOCKER-USER is the chain Docker keeps for
# the administrator: every packet forwarded to a container passes it before Docker's own rules.
#
# Run as root once Docker has started, and each time it starts (docs/edge.md has a systemd unit);
# running it again replaces its rules. EXT_IF names the public interface (default: the one the
# default route uses). The ranges are the trustedIPs of infra/traefik/traefik.yml; a test keeps
# the two lists equal, and refresh-cloudflare-ips.sh rewrites both from Cloudflare's published ones.
set -eu

EXT_IF="${EXT_IF:-$(ip route show default | awk '{ print $5; exit }')}"
CHAIN=ADIUVA-CLOUDFLARE

CLOUDFLARE_V4="
  173.245.48.0/20
  103.21.244.0/22
  103.22.200.0/22
  103.31.4.0/22
  141.101.64.0/18
  108.162.192.0/18
  190.93.240.0/20
  188.114.96.0/20
  197.234.240.0/22
  198.41.128.0/17
  162.158.0.0/15
  104.16.0.0/13
  104.24.0.0/14
  172.64.0.0/13
  131.0.72.0/22
"

CLOUDFLARE_V6="
  2400:cb00::/32
  2606:4700::/32
  2803:f800::/32
  2405:b500::/32
  2405:8100::/32
  2a06:98c0::/29
  2c0f:f248::/32
"

# $1: iptables or ip6tables; $2: the ranges allowed.
allow_only() {
  ipt=$1
  ranges=$2
  "$ipt" -N "$CHAIN" 2>/dev/null || "$ipt" -F "$CHAIN"
  for range in $ranges; do
    "$ipt" -A "$CHAIN" -s "$range" -j RETURN
  done
  "$ipt" -A "$CHAIN" -j DROP
  for port in 80 443; do
    # The port the client asked for: DOCKER-USER sees packets after Docker rewrote their
    # destination to the container's. Replies to the containers' own outgoing connections (to
    # the LLM, to Stripe) travel in the other direction and pass.
    if ! "$ipt" -C DOCKER-USER -i "$EXT_IF" -p tcp -m conntrack --ctorigdstport "$port" --ctdir ORIGINAL -j "$CHAIN" 2>/dev/null; then
      "$ipt" -I DOCKER-USER -i "$EXT_IF" -p tcp -m conntrack --ctorigdstport "$port" --ctdir ORIGINAL -j "$CHAIN"
    fi
  done
}

allow_only iptables "$CLOUDFLARE_V4"
# Only when Docker manages IPv6 rules (ip6tables, on by default since Docker 27); without them
# Docker's userland proxy serves IPv6, and ufw's INPUT rules do apply to it.
if ip6tables -n -L DOCKER-USER >/dev/null 2>&1; then
  allow_only ip6tables "$CLOUDFLARE_V6"
fi
