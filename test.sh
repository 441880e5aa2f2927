#!/usr/bin/env bash
# Run every test: lint, format, types, unit tests, and the integration suite.
# Sets itself up on a fresh Debian machine with Python 3.11: Debian packages
# when run as root, then a virtual environment in .venv with the test extras.
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
[ -f /etc/services ] || need+=(netbase)
command -v rinetd >/dev/null || [ -x /usr/sbin/rinetd ] || need+=(rinetd)
command -v npm >/dev/null || need+=(npm)
# Real receivers of the PROXY protocol, and a name server, for the integration suite.
[ -x /usr/sbin/nginx ] || need+=(nginx)
[ -x /usr/sbin/haproxy ] || need+=(haproxy)
[ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
command -v promtool >/dev/null || need+=(prometheus)  # promtool checks the metrics page
[ -x /usr/sbin/logrotate ] || need+=(logrotate)
[ -x /usr/sbin/nft ] || need+=(nftables)  # dataplane kernel loads its table with nft
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "test.sh: installing Debian packages: ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
        # The packages start daemons; the tests start their own.
        for daemon in rinetd nginx haproxy prometheus; do
            systemctl disable --now "$daemon" >/dev/null 2>&1 || pkill -x "$daemon" || true
        done
    else
        echo "test.sh: missing Debian packages (${need[*]}); run as root to install them" >&2
    fi
fi

. scripts/setup.sh
setup_venv "[test]"

# Microsoft's SARIF Multitool, to validate `rinetdc check --format sarif` for real.
sarif=.tools/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool
if [ ! -x "$sarif" ] && command -v npm >/dev/null; then
    npm install --prefix .tools --no-audit --no-fund --silent @microsoft/sarif-multitool@5.7.0
    chmod u+x "$sarif"  # its install script would; npm no longer runs it unasked
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy --strict rinetdc runtime/rinetd_run
# Three workers on the two cores (tests wait on processes and the network a third of the
# time), each taking tests from the others' queues when idle (the role's plays are long);
# each builds its own namespaces (named by its pid) when it first runs an integration test.
.venv/bin/python -m pytest -n 3 --dist worksteal "$@"
