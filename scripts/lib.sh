# Shared helpers for Warden's scripts (sourced).

# One Cargo target dir shared by every crate and kept outside the clone, so repeat runs on
# the same machine (including CI's fresh clones) are warm.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/warden/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$CARGO_TARGET_DIR"

step() { printf '\n== %s ==\n' "$*"; }

ensure_rust_components() {
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
  done
}

ensure_rust_target() {
  rustup target list --installed | grep -qx "$1" || rustup target add "$1"
}

# ensure_apt COMMAND PACKAGE: installs Debian's PACKAGE unless COMMAND exists.
ensure_apt() {
  command -v "$1" >/dev/null 2>&1 && return 0
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >/dev/null
}

# Adds up cargo's "test result:" lines and the non-cargo suites' "<suite>: N passed, N failed"
# lines (edge, azure, fuzz) into one "N passed, N failed" line.
summarize_tests() {
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1); if ($(i) ~ /^ignored;?$/) s += $(i-1) } }
       /^(edge|azure|fuzz): [0-9]+ passed, [0-9]+ failed/ { p += $2; f += $4 }
       END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$1"
}
