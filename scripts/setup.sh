# Sourced by demo.sh and test.sh: make .venv with the project installed.
# On Debian, python3 -m venv needs the python3-venv package; as root we add it.
setup_venv() {
    local extras="$1"
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        else
            echo "python3 -m venv is missing: install python3-venv (apt-get install python3-venv)" >&2
            exit 2
        fi
    fi
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}"
}
