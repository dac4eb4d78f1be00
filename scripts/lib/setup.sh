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
  mkdir -p "$CARGO_TARGET_DIR"
}

# Packages every build needs: a C/C++ toolchain for crates with native parts (blake3, RocksDB)
# and libclang for RocksDB's generated bindings.
BUILD_PACKAGES=(build-essential pkg-config libclang-dev)
