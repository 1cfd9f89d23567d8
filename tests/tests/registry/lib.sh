# Shell helpers for the registry tests, sourced by scripts that run inside a throwaway host
# network namespace (lo up) as root. Everything lives under $WORK.

REG_DIR=$(dirname "${BASH_SOURCE[0]}")

# A reproducible tar of a directory (root-owned entries, fixed mtimes).
tar_dir() { tar -C "$1" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$2" .; }

# start_registry PORT [basic HTPASSWD | token REALM ISSUER CERT | tls] : docker-registry on
# 127.0.0.1:PORT, storage under $WORK/reg-PORT.
start_registry() {
  local port=$1 mode=${2:-none}
  local dir=$WORK/reg-$port
  mkdir -p "$dir/storage"
  {
    printf 'version: 0.1\nlog:\n  level: error\n'
    printf 'storage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\n' "$dir/storage"
    printf 'http:\n  addr: 127.0.0.1:%s\n' "$port"
    [ "$mode" = tls ] && printf '  tls:\n    certificate: %s\n    key: %s\n' "$WORK/tls.crt" "$WORK/tls.key"
    case $mode in
      basic) printf 'auth:\n  htpasswd:\n    realm: test\n    path: %s\n' "$3" ;;
      token) printf 'auth:\n  token:\n    realm: %s\n    service: test-registry\n    issuer: %s\n    rootcertbundle: %s\n' "$3" "$4" "$5" ;;
    esac
  } >"$dir/config.yml"
  docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  local scheme=http; [ "$mode" = tls ] && scheme=https
  wait_for curl -sk -o /dev/null "$scheme://127.0.0.1:$port/v2/" || { cat "$dir/log" >&2; return 1; }
}

# A test CA ($WORK/ca.crt) and a server certificate it signed for 127.0.0.1: $WORK/tls.crt,
# $WORK/tls.key (webpki refuses a self-signed CA certificate used as the server's own).
make_cert() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=nschain-test-ca \
    -keyout "$WORK/ca.key" -out "$WORK/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
    -keyout "$WORK/tls.key" -out "$WORK/tls.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$WORK/tls.ext"
  openssl x509 -req -in "$WORK/tls.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" \
    -CAcreateserial -days 2 -extfile "$WORK/tls.ext" -out "$WORK/tls.crt" 2>/dev/null
}

# build_layout DIR: an OCI layout with the test images, all from busybox-static:
#   busybox   one gzip layer: busybox and its applets; CMD, ENV and WORKDIR set
#   multi     three layers: that base (gzip), /data/a and /data/b (zstd), /data/b deleted and
#             /data/c added (gzip)
#   amd64, arm64  one image each (a file /arch naming it); multiarch: their image index
build_layout() {
  local out=$1 r=$WORK/rootfs
  mkdir -p "$r/bin" "$r/srv" "$WORK/l2/data" "$WORK/l3/data" "$WORK/arch"
  cp /bin/busybox "$r/bin/busybox"
  for a in sh echo cat ls env pwd id sleep true; do ln -sf busybox "$r/bin/$a"; done
  echo hello-from-image >"$r/srv/greeting"
  tar_dir "$r" "$WORK/base.tar"
  echo a >"$WORK/l2/data/a"; echo b >"$WORK/l2/data/b"; tar_dir "$WORK/l2" "$WORK/l2.tar"
  : >"$WORK/l3/data/.wh.b"; echo c >"$WORK/l3/data/c"; tar_dir "$WORK/l3" "$WORK/l3.tar"
  local mk="python3 $REG_DIR/mkimage.py"
  $mk image "$out" busybox --cmd '["sh","-c","echo $GREETING from $(pwd)"]' \
    --env PATH=/bin --env GREETING=hi --workdir /srv "$WORK/base.tar"
  $mk image "$out" multi "$WORK/base.tar" "$WORK/l2.tar:zstd" "$WORK/l3.tar"
  for arch in amd64 arm64; do
    echo "$arch" >"$WORK/arch/arch"; tar_dir "$WORK/arch" "$WORK/$arch.tar"
    $mk image "$out" "$arch" --arch "$arch" "$WORK/base.tar" "$WORK/$arch.tar"
  done
  $mk index "$out" multiarch amd64 arm64
}

# push LAYOUT TAG DEST [skopeo args...]: copies one image (or index, with --all) to a registry.
push() {
  local layout=$1 tag=$2 dest=$3; shift 3
  skopeo copy -q --dest-tls-verify=false "$@" "oci:$layout:$tag" "docker://$dest"
}

# push_all LAYOUT HOST:PORT [skopeo args...]: every test image to HOST:PORT/test/NAME:1.
push_all() {
  local layout=$1 reg=$2; shift 2
  for t in busybox multi; do push "$layout" "$t" "$reg/test/$t:1" "$@"; done
  push "$layout" multiarch "$reg/test/multiarch:1" --all "$@"
}

# try NAME CMD...: runs CMD with stdout in $WORK/NAME.out and stderr in $WORK/NAME.err, and
# prints NAME=STATUS (a failure does not end the script).
try() {
  local name=$1 rc=0; shift
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
  echo "$name=$rc"
}

# blob_gets PORT REPO: how many blob downloads the registry on PORT served for REPO so far.
blob_gets() { grep -c "\"GET /v2/$2/blobs/" "$WORK/reg-$1/log" || true; }
