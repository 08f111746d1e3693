#!/usr/bin/env bash
# The build network and its firewall (docs/architecture.md, "Builds"; run by scripts/setup.sh, and
# safe to run again): a Docker bridge network of its own for dependency builds, whose containers
# reach only the package registries on TCP 80/443, and nothing else: not this host (any of its
# addresses), not 169.254.0.0/16, not the private ranges, not the api, the broker or Postgres,
# not another build. Rules are written with the host's iptables, the backend dockerd writes its
# own with, into chains of their own:
#   FAAS-BUILD (filter), jumped to from DOCKER-USER for traffic from or to the bridge: established
#     traffic, TCP 80/443 to each registry address and to the network's mirror range; the rest
#     rejected (icmp-admin-prohibited, which build.sh's first check tells apart from a closed
#     port: a build whose network has no firewall refuses to run).
#   FAAS-BUILD-INPUT (filter), jumped to from INPUT for traffic from the bridge to this host:
#     all rejected (no DNS either: the worker pins the registries' names in /etc/hosts, as the
#     network's label faas.build.hosts says: the addresses this script let through).
#   ip6tables: everything from or to the bridge dropped (it has no IPv6 addresses; link-local
#     ones stay unreachable).
# The registry addresses are those the index URLs' host names resolve to now: run it again
# (scripts/setup.sh does) when they change; the network is then made again with the new ones.
#
# Settings (environment): BUILD_NETWORK (faas-build), BUILD_NETWORK_SUBNET (10.213.0.0/24; builds
# get addresses from its lower half, BUILD_NETWORK_IP_RANGE), BUILD_NETWORK_MIRRORS (the range
# of the subnet for package mirrors an operator runs on the network, reachable on 80/443;
# 10.213.0.192/26), BUILD_PIP_INDEX_URL, BUILD_NPM_REGISTRY (pip's and npm's defaults when
# unset or empty).
set -euo pipefail

log() { printf '[build-network] %s\n' "$*" >&2; }

net=${BUILD_NETWORK:-faas-build}
subnet=${BUILD_NETWORK_SUBNET:-10.213.0.0/24}
ip_range=${BUILD_NETWORK_IP_RANGE:-10.213.0.0/25}
mirrors=${BUILD_NETWORK_MIRRORS:-10.213.0.192/26}
pip_index=${BUILD_PIP_INDEX_URL:-https://pypi.org/simple}
npm_registry=${BUILD_NPM_REGISTRY:-https://registry.npmjs.org/}
# The bridge's interface name is the network's name: rules match it, and Linux allows 15 bytes.
[ "${#net}" -le 15 ] || { log "BUILD_NETWORK must be at most 15 characters (it names the bridge)"; exit 1; }

# The registries' IPv4 addresses: the hosts of the index URLs (and PyPI's file host with PyPI),
# as "host=address" pairs, every address of each host.
pins_text=$(python3 - "$pip_index" "$npm_registry" <<'PY'
import ipaddress, socket, sys
from urllib.parse import urlsplit
hosts = []
for url in sys.argv[1:]:
    host = urlsplit(url).hostname
    if not host:
        sys.exit(f"not a URL with a host: {url!r}")
    hosts.append(host)
    if host == "pypi.org":
        hosts.append("files.pythonhosted.org")
for host in dict.fromkeys(hosts):
    try:
        ipaddress.IPv4Address(host)
        print(f"{host}={host}")
        continue
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, 443, socket.AF_INET, socket.SOCK_STREAM)
    except OSError as error:
        sys.exit(f"cannot resolve {host}: {error}")
    for address in dict.fromkeys(info[4][0] for info in infos):
        print(f"{host}={address}")
PY
)
mapfile -t pins <<<"$pins_text"
[ -n "$pins_text" ] || { log "no registry address resolved"; exit 1; }
mapfile -t addresses < <(printf '%s\n' "${pins[@]}" | cut -d= -f2 | sort -u)
# The worker pins these names to these addresses in every build's /etc/hosts (the network has
# no DNS), read from this label: what builds resolve and what the firewall lets through agree.
hosts_label="${pins[*]}"

# The gateway (this host's address on the bridge): the subnet's first address, recorded in the
# network so that the worker can tell build.sh which address must be out of reach.
gateway=$(python3 -c 'import ipaddress, sys; print(next(ipaddress.ip_network(sys.argv[1]).hosts()))' "$subnet")

# The network: icc off (builds do not reach each other), its bridge named after it.
if docker network inspect "$net" >/dev/null 2>&1; then
  have=$(docker network inspect "$net" --format '{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}} {{index .Options "com.docker.network.bridge.enable_icc"}} {{index .Labels "faas.build.mirrors"}} {{index .Labels "faas.build.hosts"}}')
  if [ "$have" != "$subnet $gateway false $mirrors $hosts_label" ]; then
    # Labels cannot change: a network made for other addresses (or settings) is made again,
    # which Docker refuses while a build runs on it.
    log "network $net has other settings or registry addresses ($have): making it again"
    docker network rm "$net" >/dev/null || { log "cannot remove $net (a build on it?): run this again once it is idle"; exit 1; }
  fi
fi
if ! docker network inspect "$net" >/dev/null 2>&1; then
  log "creating network $net ($subnet, builds in $ip_range, mirrors in $mirrors)"
  docker network create --driver bridge --subnet "$subnet" --ip-range "$ip_range" --gateway "$gateway" \
    --label faas.build=true --label "faas.build.mirrors=$mirrors" --label "faas.build.hosts=$hosts_label" \
    -o com.docker.network.bridge.name="$net" \
    -o com.docker.network.bridge.enable_icc=false \
    -o com.docker.network.bridge.enable_ip_masquerade=true \
    "$net" >/dev/null
fi

ipt() { iptables -w "$@"; }
# A jump at the head of $2 unless it is there already.
ensure_jump() {
  local table=$1 chain=$2; shift 2
  ipt -t "$table" -C "$chain" "$@" 2>/dev/null || ipt -t "$table" -I "$chain" 1 "$@"
}

# Each chain filled in one commit (iptables-restore flushes a chain it declares): no moment
# when a rerun leaves it empty.
{
  echo '*filter'
  echo ':FAAS-BUILD - [0:0]'
  echo '-A FAAS-BUILD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'
  for address in "${addresses[@]}"; do
    echo "-A FAAS-BUILD -i $net -d $address/32 -p tcp -m multiport --dports 80,443 -j ACCEPT"
  done
  echo "-A FAAS-BUILD -i $net -o $net -d $mirrors -p tcp -m multiport --dports 80,443 -j ACCEPT"
  echo '-A FAAS-BUILD -j REJECT --reject-with icmp-admin-prohibited'
  echo ':FAAS-BUILD-INPUT - [0:0]'
  echo '-A FAAS-BUILD-INPUT -j REJECT --reject-with icmp-admin-prohibited'
  echo 'COMMIT'
} | iptables-restore -w --noflush
# dockerd makes DOCKER-USER (and jumps to it first from FORWARD) when it starts.
ipt -N DOCKER-USER 2>/dev/null || true
ensure_jump filter DOCKER-USER -o "$net" -j FAAS-BUILD
ensure_jump filter DOCKER-USER -i "$net" -j FAAS-BUILD

ensure_jump filter INPUT -i "$net" -j FAAS-BUILD-INPUT

if command -v ip6tables >/dev/null 2>&1 && ip6tables -w -S >/dev/null 2>&1; then
  for chain in INPUT FORWARD; do
    ip6tables -w -C "$chain" -i "$net" -j DROP 2>/dev/null || ip6tables -w -I "$chain" 1 -i "$net" -j DROP
  done
  ip6tables -w -C FORWARD -o "$net" -j DROP 2>/dev/null || ip6tables -w -I FORWARD 1 -o "$net" -j DROP
fi
log "network $net: egress to ${pins[*]} (TCP 80, 443) and mirrors $mirrors only"
