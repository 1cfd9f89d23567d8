//! `nsimage pull` against a real registry: Debian's docker-registry (distribution 2.8) on
//! 127.0.0.1 inside a throwaway network namespace, images built from busybox-static and
//! pushed with skopeo (tests/tests/registry/). Plain, htpasswd, token and TLS registries;
//! tags, digests, zstd layers, an image index; a tampered blob; concurrent pulls; bad input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nschain_tests::*;

/// Root, a throwaway network, and the registry tools.
fn need_registry() -> bool {
    need::network()
        && [
            "docker-registry",
            "skopeo",
            "zstd",
            "openssl",
            "htpasswd",
            "python3",
            "curl",
        ]
        .iter()
        .all(|p| require(have(p), &format!("{p} (see DEB_PACKAGES in the Makefile)")))
}

/// Runs `body` in a throwaway host with the registry helpers loaded and `WORK` = `dir`;
/// returns the `NAME=VALUE` lines it printed.
fn script(dir: &Path, body: &str) -> BTreeMap<String, String> {
    let lib = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/registry/lib.sh");
    let out = in_throwaway_host(
        dir,
        300,
        &format!("WORK={}\n. {lib}\n{body}", dir.display()),
    );
    let text = ok_out(&out, "registry script");
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The saved stderr of a `try NAME ...` step.
fn err_of(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.err"))).unwrap()
}

/// Asserts a `try` step failed with 125 and one `nsimage: fatal:` line holding `text`.
fn assert_refused(vars: &BTreeMap<String, String>, dir: &Path, name: &str, text: &str) {
    let err = err_of(dir, name);
    assert_eq!(vars[name], "125", "{name}: {err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(first.starts_with("nsimage: fatal: "), "{name}: {err}");
    assert!(first.contains(text), "{name}: expected {text:?} in {err}");
    assert!(
        err.lines().all(|l| l.starts_with("nsimage: ")),
        "{name}: stray output: {err}"
    );
}

fn store(dir: &Path) -> PathBuf {
    dir.join("data/image")
}

/// The image names in the store's index.json.
fn names(dir: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(store(dir).join("index.json")) else {
        return Vec::new();
    };
    let index: Value = serde_json::from_str(&text).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// The entries of a store subdirectory (`blobs/sha256`, `layers`, `tmp`).
fn entries(dir: &Path, sub: &str) -> Vec<String> {
    match std::fs::read_dir(store(dir).join(sub)) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

const PLAIN: &str = "start_registry 5000\nbuild_layout $WORK/layout\npush_all $WORK/layout 127.0.0.1:5000\nR=127.0.0.1:5000/test\n";

#[test]
fn pulls_tags_digests_and_zstd_layers_and_skips_what_it_has() {
    if !need_registry() {
        return;
    }
    let dir = scratch();
    let d = dir.path();
    let vars = script(
        d,
        &format!(
            "{PLAIN}
echo pushed=$(curl -sI -H 'Accept: application/vnd.oci.image.manifest.v1+json' http://127.0.0.1:5000/v2/test/busybox/manifests/1 | tr -d '\\r' | sed -n 's/^docker-content-digest: //Ip')
try tag nsimage pull --tls-verify=false $R/busybox:1
try digest nsimage pull --tls-verify=false $R/busybox@$(cat $WORK/tag.out)
try multi nsimage pull --tls-verify=false $R/multi:1
echo gets=$(blob_gets 5000 test/multi)
try again nsimage pull --tls-verify=false $R/multi:1
echo gets_after=$(blob_gets 5000 test/multi)
echo l2=sha256:$(sha256sum <$WORK/l2.tar | cut -d' ' -f1)
echo l3=sha256:$(sha256sum <$WORK/l3.tar | cut -d' ' -f1)
"
        ),
    );
    for step in ["tag", "digest", "multi", "again"] {
        assert_eq!(vars[step], "0", "{step}: {}", err_of(d, step));
        assert_eq!(err_of(d, step), "", "{step}: quiet when not on a terminal");
    }
    let pulled = std::fs::read_to_string(d.join("tag.out")).unwrap();
    assert_eq!(
        pulled.trim(),
        vars["pushed"],
        "pull prints the registry's manifest digest"
    );
    let names = names(d);
    for want in [
        "127.0.0.1:5000/test/busybox:1".to_owned(),
        format!("127.0.0.1:5000/test/busybox@{}", vars["pushed"]),
        "127.0.0.1:5000/test/multi:1".to_owned(),
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    assert!(store(d)
        .join("blobs/sha256")
        .join(vars["pushed"].trim_start_matches("sha256:"))
        .is_file());
    // The zstd layer and the gzip layer above it are unpacked as layers of their own.
    let layer = |v: &str| {
        store(d)
            .join("layers")
            .join(vars[v].trim_start_matches("sha256:"))
            .join("diff")
    };
    assert_eq!(
        std::fs::read_to_string(layer("l2").join("data/a")).unwrap(),
        "a\n"
    );
    assert_eq!(
        std::fs::read_to_string(layer("l3").join("data/c")).unwrap(),
        "c\n"
    );
    assert_ne!(vars["gets"], "0");
    assert_eq!(
        vars["gets"], vars["gets_after"],
        "a second pull fetched blobs again"
    );
    assert!(entries(d, "tmp").is_empty());
}

#[test]
fn a_pulled_image_runs_and_shows_progress_on_a_terminal() {
    if !need_registry() || !need::busybox() {
        return;
    }
    let dir = scratch();
    let d = dir.path();
    let vars = script(
        d,
        &format!(
            "{PLAIN}
# A terminal (script(1) gives the pull a pty): the progress line is drawn on stderr.
try tty script -qefc 'nsimage pull --tls-verify=false '$R/busybox:1 /dev/null
try quiet script -qefc 'nsimage pull -q --tls-verify=false '$R/multi:1 /dev/null
try run pidns -- mntns --image $R/busybox:1 --rm
try ls pidns -- mntns --image $R/multi:1 --rm -- ls /data
"
        ),
    );
    for step in ["tty", "quiet", "run", "ls"] {
        assert_eq!(vars[step], "0", "{step}: {}", err_of(d, step));
    }
    let tty = std::fs::read_to_string(d.join("tty.out")).unwrap();
    assert!(
        tty.contains("pulling 127.0.0.1:5000/test/busybox:1: 2/2 blobs, "),
        "no progress line on a terminal: {tty:?}"
    );
    assert!(tty.contains("/s"), "no rate: {tty:?}");
    let quiet = std::fs::read_to_string(d.join("quiet.out")).unwrap();
    assert!(
        !quiet.contains("pulling"),
        "--quiet drew progress: {quiet:?}"
    );
    assert!(quiet.trim().starts_with("sha256:"), "{quiet:?}");
    let run = std::fs::read_to_string(d.join("run.out")).unwrap();
    assert_eq!(run, "hi from /srv\n", "the image's Cmd, Env and WorkingDir");
    // /data/b was deleted by the top layer, /data/c added by it.
    let ls = std::fs::read_to_string(d.join("ls.out")).unwrap();
    assert_eq!(ls.split_whitespace().collect::<Vec<_>>(), ["a", "c"]);
}

#[test]
fn rootless_pulls_into_its_own_store() {
    if !need_registry() || !need::rootless() {
        return;
    }
    let dir = scratch();
    let d = dir.path();
    let vars = script(
        d,
        &format!(
            "{PLAIN}
mkdir $WORK/nobody && chown 65534:65534 $WORK/nobody
export NSCHAIN_DATA_DIR=$WORK/nobody/data NSCHAIN_RUN_DIR=$WORK/nobody/run HOME=$WORK/nobody
try pull setpriv --reuid 65534 --regid 65534 --clear-groups nsimage pull --tls-verify=false $R/multi:1
echo owner=$(stat -c %u $WORK/nobody/data/image/index.json)
"
        ),
    );
    assert_eq!(vars["pull"], "0", "{}", err_of(d, "pull"));
    assert_eq!(vars["owner"], NOBODY.to_string());
    let store = d.join("nobody");
    assert_eq!(names(&store), ["127.0.0.1:5000/test/multi:1"]);
    assert_eq!(entries(&store, "layers").len(), 3);
}

#[test]
fn an_index_gives_the_platform_asked_for() {
    if !need_registry() {
        return;
    }
    let dir = scratch();
    let d = dir.path();
    let vars = script(
        d,
        &format!(
            "{PLAIN}
arch_in() {{ cat \"$1\"/image/layers/*/diff/arch; }}
NSCHAIN_DATA_DIR=$WORK/amd try amd nsimage pull --tls-verify=false $R/multiarch:1
NSCHAIN_DATA_DIR=$WORK/arm try arm nsimage pull --tls-verify=false --platform linux/arm64 $R/multiarch:1
NSCHAIN_DATA_DIR=$WORK/s390 try s390 nsimage pull --tls-verify=false --platform linux/s390x $R/multiarch:1
echo amd_arch=$(arch_in $WORK/amd)
echo arm_arch=$(arch_in $WORK/arm)
"
        ),
    );
    assert_eq!(vars["amd"], "0", "{}", err_of(d, "amd"));
    assert_eq!(vars["arm"], "0", "{}", err_of(d, "arm"));
    assert_eq!(vars["amd_arch"], "amd64");
    assert_eq!(vars["arm_arch"], "arm64");
    assert_refused(
        &vars,
        d,
        "s390",
        "no image for platform linux/s390x (available: linux/amd64, linux/arm64)",
    );
    assert!(!d.join("s390/image/index.json").exists() || names(&d.join("s390")).is_empty());
}

#[test]
fn basic_auth_takes_creds_auth_files_and_credential_helpers() {
    if !need_registry() {
        return;
    }
    let dir = scratch();
    let d = dir.path();
    let vars = script(
        d,
        "htpasswd -Bbc $WORK/htpasswd alice s3cret 2>/dev/null
start_registry 5000 basic $WORK/htpasswd
build_layout $WORK/layout
push $WORK/layout busybox 127.0.0.1:5000/test/busybox:1 --dest-creds alice:s3cret
R=127.0.0.1:5000/test/busybox:1
auth() { printf '{\"auths\":{\"%s\":{\"auth\":\"%s\"}}}' \"$1\" $(printf %s \"$2\" | base64 -w0); }
try anon nsimage pull --tls-verify=false $R
try wrong nsimage pull --tls-verify=false --creds alice:nope $R
try creds nsimage pull --tls-verify=false --creds alice:s3cret $R
auth 127.0.0.1:5000 alice:s3cret >$WORK/auth.json
try authfile nsimage pull --tls-verify=false --authfile $WORK/auth.json $R
mkdir -p $WORK/xdg/containers $WORK/home/.docker
auth 127.0.0.1:5000 alice:s3cret >$WORK/xdg/containers/auth.json
XDG_RUNTIME_DIR=$WORK/xdg HOME=$WORK/none try xdg nsimage pull --tls-verify=false $R
auth http://127.0.0.1:5000/ alice:s3cret >$WORK/home/.docker/config.json
XDG_RUNTIME_DIR=$WORK/none HOME=$WORK/home try docker nsimage pull --tls-verify=false $R
# Credential helpers, as docker runs them: `get`, the server on stdin, JSON back.
mkdir -p $WORK/bin $WORK/hs/.docker
cat >$WORK/bin/docker-credential-nstest <<EOF
#!/bin/sh
read -r server
echo \"\\$1 \\$server\" >>$WORK/helper.log
printf '{\"ServerURL\":\"%s\",\"Username\":\"alice\",\"Secret\":\"s3cret\"}' \"\\$server\"
EOF
printf '#!/bin/sh\necho credentials not found in native keychain; exit 1\n' >$WORK/bin/docker-credential-none
chmod +x $WORK/bin/*
export PATH=$WORK/bin:$PATH
echo '{\"auths\":{\"127.0.0.1:5000\":{}},\"credsStore\":\"nstest\"}' >$WORK/hs/.docker/config.json
XDG_RUNTIME_DIR=$WORK/none HOME=$WORK/hs try store nsimage pull --tls-verify=false $R
echo '{\"credsStore\":\"none\",\"credHelpers\":{\"127.0.0.1:5000\":\"nstest\"}}' >$WORK/helpers.json
try helper nsimage pull --tls-verify=false --authfile $WORK/helpers.json $R
echo '{\"credsStore\":\"none\"}' >$WORK/none.json
try unknown nsimage pull --tls-verify=false --authfile $WORK/none.json $R
echo '{\"credsStore\":\"absent\"}' >$WORK/absent.json
try absent nsimage pull --tls-verify=false --authfile $WORK/absent.json $R
",
    );
    assert_refused(
        &vars,
        d,
        "anon",
        "unauthorized: 127.0.0.1:5000 requires authentication",
    );
    assert!(err_of(d, "anon").contains("nsimage: hint: give credentials with --creds"));
    assert_refused(
        &vars,
        d,
        "wrong",
        "unauthorized: 127.0.0.1:5000 refused the credentials",
    );
    assert!(
        !err_of(d, "wrong").contains("nope"),
        "a password was printed"
    );
    for step in ["creds", "authfile", "xdg", "docker", "store", "helper"] {
        assert_eq!(vars[step], "0", "{step}: {}", err_of(d, step));
    }
    assert_eq!(
        std::fs::read_to_string(d.join("helper.log")).unwrap(),
        "get 127.0.0.1:5000\nget 127.0.0.1:5000\n",
        "credsStore, then credHelpers before credsStore, each asked once with the registry"
    );
    assert_refused(
        &vars,
        d,
        "unknown",
        "unauthorized: 127.0.0.1:5000 requires authentication",
    );
    assert_refused(
        &vars,
        d,
        "absent",
        "unable to run the credential helper docker-credential-absent",
    );
    assert_eq!(names(d), ["127.0.0.1:5000/test/busybox:1"]);
}

#[test]
fn bearer_tokens_come_from_the_token_server() {
    if !need_registry() {
        return;
    }
    let dir = scratch();
    let d = dir.path();
    let server = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/registry/token_server.py"
    );
    let vars = script(
        d,
        &format!(
            "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=token -keyout $WORK/tok.key -out $WORK/tok.crt 2>/dev/null
python3 {server} 5001 $WORK/tok.key $WORK/tok.crt test-issuer bob:pw &
wait_for curl -s http://127.0.0.1:5001/
start_registry 5000 token http://127.0.0.1:5001/token test-issuer $WORK/tok.crt
build_layout $WORK/layout
push $WORK/layout multi 127.0.0.1:5000/test/multi:1 --dest-creds bob:pw
R=127.0.0.1:5000/test/multi:1
try anon nsimage pull --tls-verify=false $R
try wrong nsimage pull --tls-verify=false --creds bob:bad $R
try creds nsimage pull --tls-verify=false --creds bob:pw $R
"
        ),
    );
    assert_refused(
        &vars,
        d,
        "anon",
        "unauthorized: 127.0.0.1:5000 requires authentication",
    );
    assert_refused(
        &vars,
        d,
        "wrong",
        "unauthorized: 127.0.0.1:5000 refused the credentials",
    );
    assert_eq!(vars["creds"], "0", "{}", err_of(d, "creds"));
    assert_eq!(names(d), ["127.0.0.1:5000/test/multi:1"]);
    assert_eq!(entries(d, "layers").len(), 3);
}

#[test]
fn a_tampered_blob_is_refused_and_leaves_nothing() {
    if !need_registry() {
        return;
    }
    let dir = scratch();
    let d = dir.path();
    let vars = script(
        d,
        &format!(
            "{PLAIN}
try before nsimage pull --tls-verify=false $R/busybox:1
# The busybox layer is the one blob over 100 KiB; flip one byte of it in the registry's storage.
blob=$(find $WORK/reg-5000/storage -name data -size +100k)
printf X | dd of=$blob bs=1 seek=5000 conv=notrunc status=none
NSCHAIN_DATA_DIR=$WORK/fresh try tampered nsimage pull --tls-verify=false $R/multi:1
"
        ),
    );
    // The intact blob is accepted first: the refusal below is the tampering's doing.
    assert_eq!(vars["before"], "0", "{}", err_of(d, "before"));
    assert_refused(&vars, d, "tampered", "does not match its digest");
    let fresh = d.join("fresh");
    assert!(names(&fresh).is_empty(), "{:?}", names(&fresh));
    assert_eq!(entries(&fresh, "blobs/sha256"), Vec::<String>::new());
    assert_eq!(entries(&fresh, "layers"), Vec::<String>::new());
    assert_eq!(entries(&fresh, "tmp"), Vec::<String>::new());
}

#[test]
fn a_failed_pull_keeps_what_a_concurrent_pull_found_in_the_store() {
    if !need_registry() {
        return;
    }
    let dir = scratch();
    let d = dir.path();
    let vars = script(
        d,
        &format!(
            "{PLAIN}
# Damage multi's last layer (the gzip one holding data/c); its base layer is busybox's.
for f in $(find $WORK/reg-5000/storage -name data); do
  if zcat $f 2>/dev/null | tar -t 2>/dev/null | grep -q data/c; then blob=$f; fi
done
printf X | dd of=$blob bs=1 seek=20 conv=notrunc status=none
export NSCHAIN_DATA_DIR=$WORK/shared/data
mkdir -p $NSCHAIN_DATA_DIR/image && touch $NSCHAIN_DATA_DIR/image/.lock
# Another writer at work holds the store lock shared until told to finish.
mkfifo $WORK/go
flock -s $NSCHAIN_DATA_DIR/image/.lock sh -c \"read x <$WORK/go\" &
holder=$!
nsimage pull --tls-verify=false $R/multi:1 >$WORK/failed.out 2>$WORK/failed.err &
failed=$!
# The failed pull has published the base layer and now waits to clean up.
ino=$(stat -c %i $NSCHAIN_DATA_DIR/image/.lock)
wait_for grep -q -- \"-> FLOCK.*:$ino \" /proc/locks && echo waited=yes
try other nsimage pull --tls-verify=false $R/busybox:1
echo >$WORK/go
wait $holder
rc=0; wait $failed || rc=$?; echo failed=$rc
"
        ),
    );
    assert_eq!(
        vars.get("waited").map(String::as_str),
        Some("yes"),
        "the failed pull waits for the writers at work before it removes anything: {}",
        err_of(d, "failed")
    );
    assert_refused(&vars, d, "failed", "does not match its digest");
    assert_eq!(vars["other"], "0", "{}", err_of(d, "other"));
    // busybox's blobs (manifest, config, layer) and its layer stay; what only multi had goes.
    let shared = d.join("shared");
    assert_eq!(names(&shared), ["127.0.0.1:5000/test/busybox:1"]);
    assert_eq!(entries(&shared, "blobs/sha256").len(), 3);
    assert_eq!(entries(&shared, "layers").len(), 1);
    assert_eq!(entries(&shared, "tmp"), Vec::<String>::new());
}

#[test]
fn two_concurrent_pulls_both_succeed_and_store_once() {
    if !need_registry() {
        return;
    }
    let dir = scratch();
    let d = dir.path();
    let vars = script(
        d,
        &format!(
            "{PLAIN}
try a nsimage pull --tls-verify=false $R/multi:1 & pa=$!
try b nsimage pull --tls-verify=false $R/multi:1 & pb=$!
wait $pa $pb
"
        ),
    );
    assert_eq!(vars["a"], "0", "{}", err_of(d, "a"));
    assert_eq!(vars["b"], "0", "{}", err_of(d, "b"));
    assert_eq!(names(d), ["127.0.0.1:5000/test/multi:1"]);
    // Three layers, a config and a manifest; three unpacked layers; nothing half-written.
    assert_eq!(entries(d, "blobs/sha256").len(), 5);
    assert_eq!(entries(d, "layers").len(), 3);
    assert!(entries(d, "tmp").is_empty());
}

#[test]
fn tls_registries_need_their_ca_or_tls_verify_false() {
    if !need_registry() {
        return;
    }
    let dir = scratch();
    let d = dir.path();
    let vars = script(
        d,
        "make_cert
start_registry 5443 tls
build_layout $WORK/layout
push $WORK/layout busybox 127.0.0.1:5443/test/busybox:1
mkdir $WORK/certs && cp $WORK/ca.crt $WORK/certs/ca.crt
R=127.0.0.1:5443/test/busybox:1
try unknown nsimage pull $R
try certdir nsimage pull --cert-dir $WORK/certs $R
NSCHAIN_DATA_DIR=$WORK/insecure try insecure nsimage pull --tls-verify=false $R
",
    );
    assert_refused(
        &vars,
        d,
        "unknown",
        "unable to reach registry 127.0.0.1:5443",
    );
    assert!(err_of(d, "unknown").contains("--cert-dir"));
    assert_eq!(vars["certdir"], "0", "{}", err_of(d, "certdir"));
    assert_eq!(vars["insecure"], "0", "{}", err_of(d, "insecure"));
}

#[test]
fn unknown_images_and_unreachable_registries_are_one_line_errors() {
    if !need_registry() {
        return;
    }
    let dir = scratch();
    let d = dir.path();
    let vars = script(
        d,
        &format!(
            "{PLAIN}
try repo nsimage pull --tls-verify=false $R/nope:1
try tag nsimage pull --tls-verify=false $R/busybox:2
try digest nsimage pull --tls-verify=false $R/busybox@sha256:{}
try refused nsimage pull --tls-verify=false 127.0.0.1:5999/test/busybox:1
try https nsimage pull $R/busybox:1
try dns nsimage pull nschain-test-no-such-host.invalid/x:1
",
            "0".repeat(64)
        ),
    );
    assert_refused(
        &vars,
        d,
        "repo",
        "unable to pull 127.0.0.1:5000/test/nope:1: tag 1 not found",
    );
    assert_refused(
        &vars,
        d,
        "tag",
        "tag 2 not found in 127.0.0.1:5000/test/busybox (manifest unknown)",
    );
    assert_refused(
        &vars,
        d,
        "digest",
        "not found in 127.0.0.1:5000/test/busybox",
    );
    assert_refused(
        &vars,
        d,
        "refused",
        "unable to reach registry 127.0.0.1:5999: connection refused",
    );
    assert_refused(&vars, d, "https", "--tls-verify=false");
    assert_refused(
        &vars,
        d,
        "dns",
        "unable to reach registry nschain-test-no-such-host.invalid",
    );
    assert!(names(d).is_empty());
    assert!(entries(d, "blobs/sha256").is_empty());
}

#[test]
fn bad_flag_values_are_refused() {
    let dir = scratch();
    let d = dir.path();
    let cases: &[(&[&str], &str)] = &[
        (&["--platform", "linux"], "OS/ARCH"),
        (&["--platform", "linux/arm/v7/x"], "OS/ARCH"),
        (
            &["--creds", "secretword"],
            "invalid --creds: expected USER:PASSWORD",
        ),
        (&["--creds", ":pw"], "invalid --creds"),
        (
            &["--authfile", "/nonexistent/auth.json"],
            "unable to read /nonexistent/auth.json",
        ),
        (&["--tls-verify", "maybe"], "maybe"),
        (
            &["--cert-dir", "/nonexistent"],
            "unable to read --cert-dir /nonexistent",
        ),
    ];
    for (flags, text) in cases {
        let mut cmd = tool("nsimage", d);
        cmd.arg("pull").args(*flags).arg("127.0.0.1:9/x:1");
        let out = run(&mut cmd);
        assert_fatal(&out, "nsimage");
        let err = stderr(&out);
        assert!(err.contains(text), "{flags:?}: {err}");
        assert!(!err.contains("secretword"), "a password was printed: {err}");
    }
    for bad in ["UPPER/case", "x@sha256:abc", "a:b:c", ""] {
        let out = run(tool("nsimage", d).args(["pull", bad]));
        assert_fatal(&out, "nsimage");
    }
    assert!(names(d).is_empty());
}
