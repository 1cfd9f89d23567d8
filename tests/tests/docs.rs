//! Man pages and shell completions as `make install` writes them (`TOOL --generate KIND`),
//! read as users read them: `man -l`, and bash-completion answering TAB (issue 19, item 19).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nschain_tests::*;

const TOOLS: [&str; 11] = [
    "userns", "netns", "ipcns", "utsns", "pidns", "mntns", "nsps", "timens", "cgroupns", "nsimage",
    "nsoci",
];

fn generate(tool: &str, kind: &str) -> String {
    let state = scratch();
    ok(nschain_tests::tool(tool, state.path()).args(["--generate", kind]))
}

/// The page as `man` renders it, one long line per paragraph line.
fn rendered(tool: &str) -> String {
    assert!(require(have("man"), "man (man-db)"), "man is needed");
    let dir = scratch();
    let page = dir.path().join(format!("{tool}.1"));
    std::fs::write(&page, generate(tool, "man")).unwrap();
    let out = run(Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANWIDTH", "250")
        .env("LC_ALL", "C.UTF-8"));
    assert!(out.status.success(), "man -l {tool}.1: {}", stderr(&out));
    assert!(
        stderr(&out).is_empty(),
        "man warns about {tool}.1: {}",
        stderr(&out)
    );
    stdout(&out)
}

#[test]
fn man_pages_show_usage_with_argument_names_examples_as_written_and_no_missing_pages() {
    for tool in TOOLS {
        let page = rendered(tool);
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "EXIT STATUS",
            "SEE ALSO",
        ] {
            assert!(
                page.lines().any(|l| l == section),
                "{tool}.1 lacks {section}:\n{page}"
            );
        }
        assert!(page.contains("125"), "{tool}.1: exit status 125");
        // The store managers (nsps, nsimage) and the OCI runtime take subcommands, not a
        // COMMAND.
        if !["nsps", "nsimage", "nsoci"].contains(&tool) {
            assert!(
                page.contains(&format!("{tool} [OPTIONS] [--] [COMMAND [ARG]...]")),
                "{tool}.1 synopsis:\n{page}"
            );
        }
        // Every example of --help is a line of its own in the page.
        let help = ok(nschain_tests::tool(tool, scratch().path()).arg("--help"));
        let examples: Vec<&str> = help
            .lines()
            .skip_while(|l| *l != "Examples:")
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .collect();
        assert!(!examples.is_empty(), "{tool} --help has examples");
        for example in examples {
            assert!(
                page.lines()
                    .any(|l| l.trim_end() == format!("       {example}").trim_end()),
                "{tool}.1 reflows the example {example:?}:\n{page}"
            );
        }
        // Only pages that are installed are named.
        for missing in ["nsps-exec(1)", "nsps-rm(1)", "nsps-help(1)", "netns-gc(1)"] {
            assert!(!page.contains(missing), "{tool}.1 names {missing}");
        }
    }
    let nsps = rendered("nsps");
    assert!(
        nsps.contains("nsps exec [OPTIONS] NAME [--] [COMMAND [ARG]...]")
            || nsps.contains("nsps exec NAME [--] [COMMAND [ARG]...]"),
        "{nsps}"
    );
    assert!(nsps.contains("nsps rm NAME"), "{nsps}");
    let nsimage = rendered("nsimage");
    for synopsis in [
        "nsimage load [OPTIONS] [FILE]",
        "nsimage import [OPTIONS] DIR|TAR REF",
        "nsimage rmi REF",
    ] {
        assert!(nsimage.contains(synopsis), "{nsimage}");
    }
    let nsoci = rendered("nsoci");
    for synopsis in [
        "nsoci create [OPTIONS] ID",
        "nsoci exec [OPTIONS] ID [--] [COMMAND [ARG]...]",
        "nsoci kill [OPTIONS] ID [SIGNAL]",
    ] {
        assert!(nsoci.contains(synopsis), "{nsoci}");
    }
    let netns = rendered("netns");
    assert!(netns.contains("netns gc [OPTIONS]"), "{netns}");
    assert!(netns.contains("--prune"), "{netns}");
}

#[test]
fn generation_is_asked_by_the_first_argument_never_by_the_environment() {
    let state = scratch();
    for (kind, expected) in [
        ("zsh", "#compdef"),
        ("fish", "complete -c"),
        ("bash", "complete -F"),
    ] {
        for tool in TOOLS {
            let text = generate(tool, kind);
            assert!(
                text.contains(expected) && text.contains(tool),
                "{tool} {kind}: {text:.200}"
            );
        }
    }
    // The old switch, inherited by every link, no longer turns a link into a printer.
    let out = ok(nschain_tests::tool("ipcns", state.path())
        .env("NSCHAIN_GENERATE", "man")
        .args(["--", "echo", "ran"]));
    assert_eq!(out, "ran");
    // After the first word it is the command's argument.
    let out =
        ok(nschain_tests::tool("ipcns", state.path()).args(["--", "echo", "--generate", "man"]));
    assert_eq!(out, "--generate man");
    for bad in [&["--generate", "troff"][..], &["--generate"]] {
        let out = run(nschain_tests::tool("ipcns", state.path()).args(bad));
        assert_fatal(&out, "ipcns");
        assert!(
            stderr(&out).contains("expected man, bash, zsh or fish"),
            "{}",
            stderr(&out)
        );
    }
}

/// Asks bash-completion what TAB offers at the end of each line.
fn complete(dir: &Path, state: &Path, lines: &[&str]) -> Vec<Vec<String>> {
    let mut script = String::from("source /usr/share/bash-completion/bash_completion\n");
    for tool in TOOLS {
        let file = dir.join(format!("{tool}.bash"));
        std::fs::write(&file, generate(tool, "bash")).unwrap();
        script.push_str(&format!("source {}\n", file.display()));
    }
    script.push_str(
        r#"
complete_line() {
    local line=$1
    COMP_LINE=$line; COMP_POINT=${#line}
    read -ra COMP_WORDS <<< "$line"
    [[ $line == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
    COMPREPLY=()
    local spec; spec=$(complete -p "${COMP_WORDS[0]}")
    local fn=${spec#*-F }; fn=${fn%% *}
    "$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}" 2>/dev/null
    echo "$(printf '%s\n' "${COMPREPLY[@]}" | sort -u | tr '\n' ' ')"
}
"#,
    );
    for line in lines {
        script.push_str(&format!("complete_line '{line}'\n"));
    }
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(script);
    with_env(&mut cmd, state);
    cmd.current_dir(dir);
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[test]
fn bash_completes_the_next_program_after_the_options_and_chain_names_where_they_go() {
    if !require(
        Path::new("/usr/share/bash-completion/bash_completion").exists(),
        "bash-completion",
    ) {
        return;
    }
    let dir = scratch();
    let state = scratch();
    std::fs::create_dir(dir.path().join("somedir")).unwrap();
    // A running chain, for the names.
    let name = format!("compl{}", std::process::id());
    let mut chain = nschain_tests::tool("ipcns", state.path())
        .args(["--name", &name, "--", "sleep", "30"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !state
        .path()
        .join(format!("run/chains/{name}"))
        .has_record("ipc")
    {
        assert!(Instant::now() < deadline, "the chain never registered");
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = complete(
        dir.path(),
        state.path(),
        &[
            "utsns -- ut",
            "utsns --hostname web1 -- ut",
            "utsns --hostname web1 ipc",
            "utsns -- utsns --host",
            "netns gc --p",
            "netns --p",
            "netns --subnet ",
            "netns --bri",
            "nsps exec ",
            "nsps ",
            "nsps exec web -- ipc",
            "utsns --join ",
            "mntns --rootfs some",
        ],
    );
    chain.kill().unwrap();
    chain.wait().unwrap();
    let has = |i: usize, word: &str| got[i].iter().any(|w| w == word);
    // After `--`, or at the first word that is not an option: a program, not our options.
    assert!(
        has(0, "utsns") && has(0, "utmpdump") && !got[0].iter().any(|w| w.starts_with('-')),
        "{:?}",
        got[0]
    );
    assert!(has(1, "utsns"), "{:?}", got[1]);
    assert!(has(2, "ipcns") && has(2, "ipcs"), "{:?}", got[2]);
    // The next link's own options once its name is there.
    assert_eq!(got[3], ["--hostname"]);
    assert_eq!(got[4], ["--prune"]);
    assert_eq!(got[5], ["--pasta", "--pin", "--publish"]);
    assert!(
        got[6].is_empty(),
        "--subnet takes a CIDR, not a file: {:?}",
        got[6]
    );
    assert_eq!(got[7], ["--bridge="]);
    assert!(has(8, &name), "{:?}", got[8]);
    assert!(
        has(9, "exec") && has(9, "rm") && has(9, &name),
        "{:?}",
        got[9]
    );
    assert!(has(10, "ipcns"), "{:?}", got[10]);
    assert!(has(11, &name) && has(11, "somedir"), "{:?}", got[11]);
    assert!(has(12, "somedir"), "{:?}", got[12]);
}

#[test]
fn nschain_answers_help_and_version_like_every_tool() {
    let help = Command::new(bin("nschain")).arg("--help").output().unwrap();
    assert!(help.status.success(), "nschain --help: {help:?}");
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("Usage: nschain TOOL [ARG]..."), "{text}");
    for tool in TOOLS {
        assert!(
            text.contains(tool),
            "nschain --help does not name {tool}: {text}"
        );
    }
    let version = Command::new(bin("nschain")).arg("-V").output().unwrap();
    assert!(version.status.success(), "nschain -V: {version:?}");
    assert!(
        String::from_utf8_lossy(&version.stdout).starts_with("nschain "),
        "{version:?}"
    );
}
