#!/usr/bin/env bash
# What the end-to-end runs need before any daemon starts: bookworm's packages (Docker 20.10,
# containerd 1.6, runc, the registry, busybox-static, fuse3, protoc), a newer Docker and
# containerd from another suite of the same Debian archive fetched with a private apt
# configuration and unpacked under a cache directory (never installed system-wide), and the
# lcfs binary. Sourced by run.sh after lib.sh.

# The packages the runs use from the machine's own suite (bookworm).
E2E_APT_PACKAGES=(docker.io docker-registry busybox-static fuse3 protobuf-compiler iproute2 e2fsprogs)

# Installs those of E2E_APT_PACKAGES that are missing (apt-get update first only if needed).
install_packages() {
  local missing=() p
  for p in "${E2E_APT_PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "all present: ${E2E_APT_PACKAGES[*]}"
    return 0
  fi
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
}

# Prints the machine's Debian archive address: the URIs of the first deb822 stanza in
# /etc/apt/sources.list.d/debian.sources that is not the security archive (or, on a machine
# with a classic sources.list, the first `deb` line's address).
debian_archive_uri() {
  local uri=
  if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk 'BEGIN { RS = ""; FS = "\n" }
      { u = ""; for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { split($i, w, /[ \t]+/); u = w[2] }
        if (u != "" && u !~ /security/) { print u; exit } }' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { print $i; exit } }' \
      /etc/apt/sources.list | grep -v security | head -n1)
  fi
  [ -n "$uri" ] || die "no Debian archive address in /etc/apt/sources.list.d/debian.sources (URIs:) nor /etc/apt/sources.list"
  echo "${uri%/}"
}

# The options that make apt-get use a private configuration under DIR: its own sources list,
# lists, cache; no system apt.conf.d (whose hooks would run), no lock on the system's state.
# The machine's HTTP proxy setting, if it has one, is kept.
private_apt_options() {
  local dir=$1 proxy
  APT_OPTS=(
    -o "Dir::Etc::sourcelist=$dir/sources.list"
    -o "Dir::Etc::sourceparts=/nonexistent"
    -o "Dir::Etc::parts=/nonexistent"
    -o "Dir::State::Lists=$dir/lists"
    -o "Dir::Cache=$dir/cache"
    -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=root"
    -o "Acquire::Languages=none"
  )
  proxy=$(apt-config dump Acquire::http::Proxy 2>/dev/null | sed -n 's/^Acquire::http::Proxy "\(.*\)";$/\1/p')
  [ -z "$proxy" ] || APT_OPTS+=(-o "Acquire::http::Proxy=$proxy")
}

# Fetches Docker and containerd of SUITE (sid: Docker 28 + containerd 2; trixie: Docker 26 +
# containerd 1.7) into E2E_CACHE/SUITE/root, unpacked with dpkg-deb -x, and sets ENGINE_DIR to
# it. Cached: a second run finds the stamp file and downloads nothing. Fails saying why when the
# lists or the packages cannot be fetched.
fetch_engines() {
  local suite=$1
  local dir=$E2E_CACHE/$suite
  ENGINE_DIR=$dir/root
  if [ -f "$dir/stamp" ] && [ -x "$ENGINE_DIR/usr/sbin/dockerd" ] && [ -x "$ENGINE_DIR/usr/bin/containerd" ]; then
    echo "cached in $dir: $(tr '\n' ' ' < "$dir/stamp")"
    return 0
  fi
  local archive keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  archive=$(debian_archive_uri)
  [ -r "$keyring" ] || die "no $keyring: install debian-archive-keyring"
  rm -rf "$dir"
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/debs"
  echo "deb [signed-by=$keyring] $archive $suite main" > "$dir/sources.list"
  private_apt_options "$dir"
  echo "apt-get update of suite $suite from $archive (private configuration in $dir)"
  if ! apt-get "${APT_OPTS[@]}" --error-on=any update > "$dir/update.log" 2>&1; then
    cat "$dir/update.log"
    die "cannot fetch the package lists of suite '$suite' from $archive (apt-get update failed; its output is above and in $dir/update.log). Is the archive reachable, and does $keyring know the key that signs '$suite'?"
  fi
  local packages=(docker.io/"$suite" containerd/"$suite")
  # Newer suites ship the client in its own package.
  if apt-cache "${APT_OPTS[@]}" show docker-cli/"$suite" >/dev/null 2>&1; then
    packages+=(docker-cli/"$suite")
  fi
  echo "apt-get download ${packages[*]}"
  if ! (cd "$dir/debs" && apt-get "${APT_OPTS[@]}" download "${packages[@]}") > "$dir/download.log" 2>&1; then
    cat "$dir/download.log"
    die "cannot download ${packages[*]} from $archive (apt-get download failed; its output is above and in $dir/download.log)"
  fi
  local deb
  mkdir -p "$ENGINE_DIR"
  for deb in "$dir"/debs/*.deb; do
    dpkg-deb -x "$deb" "$ENGINE_DIR"
    echo "$(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)" >> "$dir/stamp.new"
  done
  # The package lists are large and only needed to download: keep the .debs and the tree.
  rm -rf "$dir/lists" "$dir/cache"
  "$ENGINE_DIR/usr/sbin/dockerd" --version
  "$ENGINE_DIR/usr/bin/containerd" --version
  mv "$dir/stamp.new" "$dir/stamp"
}

# Builds the lcfs binary (cargo build --release -p lcfs-fuse, in the repository at E2E_ROOT) and
# sets LCFS to it; honours CARGO_TARGET_DIR. LCFS_BIN set by the caller skips the build.
build_lcfs() {
  if [ -n "${LCFS_BIN:-}" ]; then
    LCFS=$LCFS_BIN
  else
    (cd "$E2E_ROOT" && cargo build --release -p lcfs-fuse)
    local target
    target=$(cd "$E2E_ROOT" && cargo metadata --format-version 1 --no-deps \
      | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    LCFS=${target:-${CARGO_TARGET_DIR:-$E2E_ROOT/target}}/release/lcfs
  fi
  [ -x "$LCFS" ] || die "no lcfs binary at $LCFS"
  "$LCFS" --version
}
