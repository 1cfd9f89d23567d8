//! Escapes through a hostile image: symlinks in the container root that try to redirect a
//! volume (CVE-2021-30465, CVE-2024-45310), the masking of kernel files (CVE-2025-31133) or
//! the device nodes (CVE-2026-41579) to the host. Each must be resolved inside the root or
//! refused. Run against the three chains, audited.

mod escape_common;

use std::path::Path;

use escape_common::*;
use nschain_tests::*;

fn configs() -> Vec<Config> {
    if need_rootless() {
        Config::ALL.to_vec()
    } else {
        vec![Config::Rootful, Config::RootfulUserns]
    }
}

fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

#[test]
fn a_volume_through_a_symlink_in_the_image_stays_inside_the_root_cve_2021_30465() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("volsym");
    let host_target = lab.dir.path().join("host-target");
    std::fs::create_dir_all(&host_target).unwrap();
    std::fs::write(host_target.join("host-file"), "host").unwrap();
    let not_created = lab.dir.path().join("not-created");
    let source = lab.dir.path().join("volume-src");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("volume-file"), "volume").unwrap();
    std::fs::set_permissions(&source, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // The image: absolute and relative links out of the root, to an existing host directory
    // and to one that does not exist (a host-following mkdir would create it).
    let t = host_target.display().to_string();
    let links = [
        ("abs", t.clone()),
        ("rel", format!("../../../../../../..{t}")),
        ("new", format!("{}/sub", not_created.display())),
        ("sysk", "/proc/sys/kernel".to_owned()),
    ];
    for (name, target) in &links {
        std::os::unix::fs::symlink(target, lab.root.join(name)).unwrap();
    }
    let src = source.display().to_string();
    for config in configs() {
        for (name, target) in &links {
            let volume = format!("{src}:/{name}");
            // Inside, the host's directory must stay unreachable and the volume must be where
            // the link leads INSIDE the root (or mntns refuses the volume).
            let inside_target = if target.starts_with('/') {
                target.clone()
            } else {
                t.clone()
            };
            let out = run(&mut lab.chain(
                config,
                "",
                &["-v", &volume],
                &[
                    "/nsattack",
                    "read",
                    &format!("{t}/host-file"),
                    &format!("/{name}/host-file"),
                ],
            ));
            if out.status.code() == Some(125) {
                assert!(
                    stderr(&out).starts_with("mntns: fatal: "),
                    "{}",
                    stderr(&out)
                );
            } else {
                assert_blocked(
                    &format!("CVE-2021-30465: volume -v {volume} through the image's /{name} -> {target}"),
                    config,
                    &out,
                );
                let out = run(&mut lab.chain(
                    config,
                    "",
                    &["-v", &volume],
                    &["/bin/cat", &format!("{inside_target}/volume-file")],
                ));
                if *name != "sysk" {
                    assert_eq!(
                        stdout(&out),
                        "volume",
                        "the volume is not at the in-root target of /{name}: {}",
                        stderr(&out)
                    );
                }
            }
            assert_eq!(
                tree(&host_target),
                ["host-file"],
                "HOLE [CVE-2021-30465] the host directory behind /{name} changed"
            );
            assert!(
                !not_created.exists(),
                "HOLE [CVE-2024-45310] mntns created {} on the host through the image's /{name}",
                not_created.display()
            );
        }
    }
    lab.assert_clean();
}

#[test]
fn a_swapped_dev_null_in_the_image_is_never_bound_cve_2025_31133() {
    if !need_root() {
        return;
    }
    for variant in ["symlink", "regular file", "symlinked /dev"] {
        let lab = Lab::new("devnull");
        let dev = lab.root.join("dev");
        let host_dev = lab.dir.path().join("host-dev");
        std::fs::create_dir_all(&host_dev).unwrap();
        match variant {
            "symlink" => {
                std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", dev.join("null"))
                    .unwrap()
            }
            "regular file" => std::fs::write(dev.join("null"), "").unwrap(),
            _ => {
                std::fs::remove_dir(&dev).unwrap();
                std::os::unix::fs::symlink(&host_dev, &dev).unwrap();
            }
        }
        for config in configs() {
            for attack in [&["devnull"][..], &["sysctl"][..]] {
                let mut command = vec!["/nsattack"];
                command.extend_from_slice(attack);
                let out = run(&mut lab.chain(config, "", &[], &command));
                if out.status.code() == Some(125) {
                    assert!(
                        stderr(&out).starts_with("mntns: fatal: "),
                        "{}",
                        stderr(&out)
                    );
                    continue;
                }
                assert_blocked(
                    &format!("CVE-2025-31133: an image whose /dev/null is a {variant}"),
                    config,
                    &out,
                );
            }
            assert!(
                tree(&host_dev).is_empty(),
                "HOLE [CVE-2026-41579] device nodes made on the host through the image's /dev symlink: {:?}",
                tree(&host_dev)
            );
        }
        lab.assert_clean();
    }
}
