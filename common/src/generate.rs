//! `TOOL --generate man|bash|zsh|fish`: the tool's man page and shell completions, made from
//! its own argument definitions so that they always match the binary (`make install` writes
//! them). Recognised only as the very first argument, never from the environment: nothing a
//! chain inherits turns a link into a printer.
//!
//! The man page and the bash completion are our own, for what a chain tool needs that the
//! generic generators do not know: after `--` (or the first word that is not an option) comes
//! another program, completed as `sudo` and `unshare` complete theirs; `--join` and `nsps`
//! take chain names; examples keep their line breaks.

use std::fmt::Write as _;
use std::io::Write as _;

use clap::{Arg, ArgAction, Command, ValueHint};

use crate::{exit, report};

/// Where a word of the tool's argv is the start of COMMAND.
const COMMAND_VALUE: &str = "COMMAND";
/// Positionals with this value name take a chain's name.
const NAME_VALUE: &str = "NAME";
/// The command that lists the running chains' names, for completion.
const CHAIN_NAMES: &str = "nsps 2>/dev/null | awk 'NR>1{print $1}'";

/// The kind asked for by `argv`, when its first argument is `--generate`.
pub fn requested(argv: &[std::ffi::OsString]) -> Option<String> {
    match argv.get(1) {
        Some(flag) if flag == "--generate" => Some(
            argv.get(2)
                .map(|k| k.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
        _ => None,
    }
}

/// Prints what `kind` names for `command` (the tool's parser); returns the exit status.
pub fn print(command: Command, tool: &'static str, kind: &str) -> u8 {
    let mut command = command.name(tool).bin_name(tool);
    command.build();
    let text = match kind {
        "man" => man(&command),
        "bash" => bash(&command),
        "zsh" | "fish" => {
            let shell = if kind == "zsh" {
                clap_complete::Shell::Zsh
            } else {
                clap_complete::Shell::Fish
            };
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command, tool, &mut out);
            String::from_utf8_lossy(&out).into_owned()
        }
        other => {
            eprintln!("{tool}: fatal: --generate {other:?}: expected man, bash, zsh or fish");
            return exit::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) => {
            report::warning(format_args!("unable to write the {kind} output: {e}"));
            exit::FAILURE
        }
    }
}

fn visible_options(command: &Command) -> impl Iterator<Item = &Arg> {
    command
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_positional())
}

/// A subcommand's own options: not the global ones (listed with the tool's) nor --help.
fn own_options(sub: &Command) -> impl Iterator<Item = &Arg> {
    visible_options(sub).filter(|a| !a.is_global_set() && a.get_id() != "help")
}

fn positionals(command: &Command) -> impl Iterator<Item = &Arg> {
    command.get_positionals().filter(|a| !a.is_hide_set())
}

fn takes_value(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Set | ArgAction::Append)
}

/// Whether the value may only be attached (`--bridge[=NAME]`): the next word is not its value.
fn value_is_optional(arg: &Arg) -> bool {
    arg.get_num_args().is_some_and(|n| n.min_values() == 0)
}

fn value_name(arg: &Arg) -> String {
    arg.get_value_names()
        .and_then(|names| names.first())
        .map(|n| n.to_string())
        .unwrap_or_else(|| arg.get_id().as_str().to_uppercase())
}

fn is_command(arg: &Arg) -> bool {
    value_name(arg) == COMMAND_VALUE
}

// ---------------------------------------------------------------------------------------
// The man page (roff, man(7) macros).

/// Text for roff: backslashes and hyphens escaped, no line read as a request.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    escaped
        .lines()
        .map(|line| {
            if line.starts_with('.') || line.starts_with('\'') {
                format!("\\&{line}")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn bold(text: &str) -> String {
    format!("\\fB{}\\fR", roff(text))
}

fn italic(text: &str) -> String {
    format!("\\fI{}\\fR", roff(text))
}

/// `--flag VALUE`, `-p, --publish SPEC`, `--bridge[=NAME]`, as roff.
fn option_label(arg: &Arg) -> String {
    let mut names = Vec::new();
    if let Some(short) = arg.get_short() {
        names.push(bold(&format!("-{short}")));
    }
    if let Some(long) = arg.get_long() {
        names.push(bold(&format!("--{long}")));
    }
    let mut label = names.join(", ");
    if takes_value(arg) {
        let value = italic(&value_name(arg));
        if value_is_optional(arg) {
            let _ = write!(label, "[={value}]");
        } else {
            let _ = write!(label, " {value}");
        }
    }
    label
}

/// The positionals of a usage line: `[--] [COMMAND [ARG]...]`, `NAME`, `[NAME]`.
fn positional_usage(command: &Command) -> String {
    positionals(command)
        .map(|arg| {
            if is_command(arg) {
                format!(
                    "[{}] [{} [{}]...]",
                    bold("--"),
                    italic(COMMAND_VALUE),
                    italic("ARG")
                )
            } else if arg.is_required_set() {
                italic(&value_name(arg))
            } else {
                format!("[{}]", italic(&value_name(arg)))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn usage_line(out: &mut String, words: &str, command: &Command, sub: bool) {
    let mut line = bold(words);
    let has_options = if sub {
        own_options(command).next().is_some()
    } else {
        visible_options(command).next().is_some()
    };
    if has_options {
        line.push_str(&format!(" [{}]", italic("OPTIONS")));
    }
    let rest = positional_usage(command);
    if !rest.is_empty() {
        line.push(' ');
        line.push_str(&rest);
    }
    let _ = writeln!(out, "{line}\n.br");
}

fn options_section<'a>(out: &mut String, options: impl Iterator<Item = &'a Arg>) {
    for arg in options {
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let _ = writeln!(out, ".TP\n{}\n{}", option_label(arg), roff(&help));
    }
}

/// The after-help text as sections: a line `Title:` at column 0 starts one; lines keep their
/// breaks (examples are not prose).
fn extra_sections(out: &mut String, after: &str) {
    let mut title = "NOTES".to_owned();
    let mut lines: Vec<&str> = Vec::new();
    let flush = |out: &mut String, title: &str, lines: &mut Vec<&str>| {
        while lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        if lines.is_empty() {
            return;
        }
        let _ = writeln!(out, ".SH {}\n.nf", roff(&title.to_uppercase()));
        for line in lines.drain(..) {
            let _ = writeln!(out, "{}", roff(line));
        }
        let _ = writeln!(out, ".fi");
    };
    for line in after.lines() {
        let heading = line
            .strip_suffix(':')
            .filter(|h| !h.starts_with(' ') && !h.is_empty() && !h.contains("  "));
        match heading {
            Some(heading) => {
                flush(out, &title, &mut lines);
                title = heading.to_owned();
            }
            None if lines.is_empty() && line.trim().is_empty() => {}
            None => lines.push(line),
        }
    }
    flush(out, &title, &mut lines);
}

fn runs_a_command(command: &Command) -> bool {
    positionals(command).any(is_command)
        || command
            .get_subcommands()
            .any(|s| positionals(s).any(is_command))
}

fn man(command: &Command) -> String {
    let tool = command.get_name();
    let mut out = String::new();
    let version = command.get_version().unwrap_or("");
    let _ = writeln!(
        out,
        ".TH {} 1 \"\" \"nschain {}\" \"User Commands\"",
        roff(&tool.to_uppercase()),
        roff(version)
    );
    let about = command
        .get_about()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let first = about.lines().next().unwrap_or("").trim_end_matches('.');
    let _ = writeln!(out, ".SH NAME\n{} \\- {}", roff(tool), roff(first));

    let _ = writeln!(out, ".SH SYNOPSIS");
    usage_line(&mut out, tool, command, false);
    for sub in command.get_subcommands() {
        usage_line(&mut out, &format!("{tool} {}", sub.get_name()), sub, true);
    }

    let long = command
        .get_long_about()
        .or_else(|| command.get_about())
        .map(|a| a.to_string())
        .unwrap_or_default();
    let _ = writeln!(out, ".SH DESCRIPTION");
    for paragraph in long.split("\n\n") {
        let _ = writeln!(out, ".PP\n{}", roff(paragraph.trim()));
    }

    let _ = writeln!(out, ".SH OPTIONS");
    options_section(&mut out, visible_options(command));
    if command.get_subcommands().next().is_some() {
        let _ = writeln!(out, ".SH SUBCOMMANDS");
        for sub in command.get_subcommands() {
            let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
            let _ = writeln!(
                out,
                ".TP\n{} {}\n{}",
                bold(&format!("{tool} {}", sub.get_name())),
                positional_usage(sub),
                roff(&about)
            );
            if own_options(sub).next().is_some() {
                let _ = writeln!(out, ".RS");
                options_section(&mut out, own_options(sub));
                let _ = writeln!(out, ".RE");
            }
        }
    }
    if let Some(after) = command.get_after_help() {
        extra_sections(&mut out, &after.to_string());
    }

    let _ = writeln!(out, ".SH EXIT STATUS");
    let status = if runs_a_command(command) {
        "When COMMAND runs, its exit status (a signal N: 128+N). Otherwise:\n.TP\n.B 125\nthe tool itself failed (a one\\-line message names it on stderr)\n.TP\n.B 126\nCOMMAND was found but could not be executed\n.TP\n.B 127\nCOMMAND was not found"
    } else {
        ".TP\n.B 0\nsuccess\n.TP\n.B 125\nthe tool failed (a one\\-line message names it on stderr)"
    };
    let _ = writeln!(out, "{status}");

    let _ = writeln!(out, ".SH SEE ALSO");
    let others: Vec<String> = crate::handdown::LINKS
        .iter()
        .chain(["nsps", "unshare", "nsenter", "bwrap"].iter())
        .filter(|t| **t != tool)
        .map(|t| format!(".BR {} (1)", roff(t)))
        .collect();
    let _ = writeln!(out, "{}", others.join(",\n"));
    out
}

// ---------------------------------------------------------------------------------------
// The bash completion.

fn shell_words<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(" ")
}

/// `--a|--b|-c`: the options of `command` whose value is the next word.
fn separate_value_options(command: &Command) -> Vec<String> {
    let mut names = Vec::new();
    for arg in command
        .get_arguments()
        .filter(|a| takes_value(a) && !value_is_optional(a))
    {
        if let Some(long) = arg.get_long() {
            names.push(format!("--{long}"));
        }
        if let Some(short) = arg.get_short() {
            names.push(format!("-{short}"));
        }
    }
    names
}

fn option_words(command: &Command) -> String {
    let mut words = Vec::new();
    for arg in visible_options(command) {
        if let Some(long) = arg.get_long() {
            words.push(if takes_value(arg) && value_is_optional(arg) {
                format!("--{long}=")
            } else {
                format!("--{long}")
            });
        }
        if let Some(short) = arg.get_short() {
            words.push(format!("-{short}"));
        }
    }
    words.push("--help".to_owned());
    words.join(" ")
}

/// The `case` arms that complete the value of the option in `$prev`.
fn value_arms(command: &Command) -> String {
    let mut arms = String::new();
    for arg in command.get_arguments().filter(|a| takes_value(a)) {
        let Some(long) = arg.get_long() else { continue };
        let mut pattern = format!("--{long}");
        if let Some(short) = arg.get_short() {
            let _ = write!(pattern, "|-{short}");
        }
        let action = if long == "join" {
            // A chain's name, a pid, or a namespace file.
            format!("COMPREPLY=($(compgen -W \"$({CHAIN_NAMES})\" -- \"$cur\")); _filedir")
        } else {
            match arg.get_value_hint() {
                ValueHint::AnyPath | ValueHint::FilePath | ValueHint::ExecutablePath => {
                    "_filedir".to_owned()
                }
                ValueHint::DirPath => "_filedir -d".to_owned(),
                _ => match arg.get_possible_values() {
                    values if !values.is_empty() => format!(
                        "COMPREPLY=($(compgen -W \"{}\" -- \"$cur\"))",
                        shell_words(values.iter().map(|v| v.get_name()))
                    ),
                    _ => "COMPREPLY=()".to_owned(),
                },
            }
        };
        let _ = writeln!(arms, "            {pattern}) {action}; return ;;");
    }
    arms
}

/// One function per (sub)command: walks the words after `$start`, completes the current one.
fn bash_function(out: &mut String, fname: &str, command: &Command, subs: &[(String, String)]) {
    let values = separate_value_options(command);
    let skip = if values.is_empty() {
        "--no-such-option".to_owned()
    } else {
        values.join("|")
    };
    let positional_kinds: Vec<&str> = positionals(command)
        .map(|a| {
            if is_command(a) {
                "command"
            } else if value_name(a) == NAME_VALUE {
                "name"
            } else {
                "other"
            }
        })
        .collect();
    let sub_case: String = subs
        .iter()
        .map(|(word, function)| {
            format!("                    {word}) {function} $((i + 1)); return ;;\n")
        })
        .collect();
    let sub_words = shell_words(subs.iter().map(|(w, _)| w.as_str()));
    let _ = write!(
        out,
        r#"{fname}() {{
    local start=$1 i=$1 n=0 word
    local -a kinds=({kinds})
    while [ "$i" -lt "$cword" ]; do
        word=${{words[i]}}
        case $word in
            --) _command_offset $((i + 1)); return ;;
            {skip}) i=$((i + 2)); continue ;;
            -*) ;;
            *)
                if [ "$n" -eq 0 ] && [ "$i" -eq "$start" ]; then
                    case $word in
{sub_case}                    esac
                fi
                if [ "${{kinds[n]}}" = command ]; then _command_offset "$i"; return; fi
                n=$((n + 1)) ;;
        esac
        i=$((i + 1))
    done
    case $prev in
{arms}    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "{options}" -- "$cur"))
        [[ ${{COMPREPLY-}} == *= ]] && compopt -o nospace
        return
    fi
    local first=""
    [ "$i" -eq "$start" ] && [ "$n" -eq 0 ] && first="{sub_words}"
    case ${{kinds[n]-}} in
        command) COMPREPLY=($(compgen -c -W "$first" -- "$cur")) ;;
        name) COMPREPLY=($(compgen -W "$first $({names})" -- "$cur")) ;;
        *) COMPREPLY=($(compgen -W "$first" -- "$cur")) ;;
    esac
}}
"#,
        kinds = positional_kinds.join(" "),
        arms = value_arms(command),
        options = option_words(command),
        names = CHAIN_NAMES,
    );
}

fn bash(command: &Command) -> String {
    let tool = command.get_name();
    let base = format!("_nschain_{tool}");
    let mut out = format!(
        "# bash completion for {tool} (made by `{tool} --generate bash`; needs bash-completion)\n"
    );
    let mut subs = Vec::new();
    for sub in command.get_subcommands() {
        let function = format!("{base}_{}", sub.get_name());
        bash_function(&mut out, &function, sub, &[]);
        subs.push((sub.get_name().to_owned(), function));
    }
    bash_function(&mut out, &format!("{base}_at"), command, &subs);
    let _ = write!(
        out,
        r#"{base}() {{
    local cur prev words cword split
    _init_completion -s || return
    {base}_at 1
}}
complete -F {base} {tool}
"#
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roff_text_is_escaped_and_never_a_request() {
        assert_eq!(roff("a-b \\n"), "a\\-b \\en");
        assert_eq!(roff(".TH x\n'quote"), "\\&.TH x\n\\&'quote");
    }

    #[test]
    fn only_the_first_argument_asks_for_generation() {
        let v = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(
            requested(&v(&["t", "--generate", "man"])).as_deref(),
            Some("man")
        );
        assert_eq!(requested(&v(&["t", "--generate"])).as_deref(), Some(""));
        assert_eq!(requested(&v(&["t", "--", "--generate", "man"])), None);
        assert_eq!(requested(&v(&["t", "x", "--generate"])), None);
    }

    #[test]
    fn after_help_sections_keep_their_lines() {
        let mut out = String::new();
        extra_sections(&mut out, "Examples:\n  a -- b\n  c\n\nNotes:\n  n1\n  n2");
        assert_eq!(
            out,
            ".SH EXAMPLES\n.nf\n  a \\-\\- b\n  c\n.fi\n.SH NOTES\n.nf\n  n1\n  n2\n.fi\n"
        );
    }
}
