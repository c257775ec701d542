//! Turning the command line into a `Cli` (`args.rs`'s clap definition): the help layout every
//! command shares, the top help's list of commands, and the one-line usage errors
//! (`error_line`) that exit 2.

use clap::CommandFactory;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use super::args::*;

/// The clap command: the derive's, with the help layout every command shares and the top
/// help's list of commands.
pub(crate) fn command() -> clap::Command {
    let command = with_help_template(Cli::command(), "clockeye-webhooks");
    let top = format!(
        "{TOP_HELP}{}\nflags (before or after the command):\n{{options}}\n",
        summary(&command)
    );
    command.help_template(top)
}

fn with_help_template(command: clap::Command, words: &str) -> clap::Command {
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_string())
        .collect();
    names.iter().fold(command, |command, name| {
        command.mut_subcommand(name, |sub| {
            let words = format!("{words} {name}");
            let template = format!("{words}{COMMAND_HELP}");
            with_help_template(sub.help_template(template), &words)
        })
    })
}

/// One line per command (`endpoints list`, not `endpoints`), for the top-level help.
fn summary(command: &clap::Command) -> String {
    let mut lines = Vec::new();
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        if ["serve", "bench", "backup", "migrate"].contains(&sub.get_name()) {
            continue;
        }
        if sub.has_subcommands() {
            for leaf in sub.get_subcommands() {
                // Two levels at most: `workspaces tokens create WORKSPACE`.
                if leaf.has_subcommands() {
                    for deeper in leaf.get_subcommands() {
                        let words = format!(
                            "{} {} {}",
                            sub.get_name(),
                            leaf.get_name(),
                            usage_args(deeper)
                        );
                        lines.push((words, deeper));
                    }
                } else {
                    lines.push((format!("{} {}", sub.get_name(), usage_args(leaf)), leaf));
                }
            }
        } else {
            lines.push((usage_args(sub), sub));
        }
    }
    let mut text = String::new();
    for (words, sub) in lines {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        // The first clause is enough for the overview.
        let about = about
            .split([';', '('])
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        text.push_str(&format!(
            "  clockeye-webhooks {:<26}  {about}\n",
            words.trim_end()
        ));
    }
    text
}

/// `show ID`: a command's name and its positional arguments.
fn usage_args(command: &clap::Command) -> String {
    let mut words = vec![command.get_name().to_string()];
    for arg in command.get_positionals() {
        let name = arg
            .get_value_names()
            .and_then(|names| names.first())
            .map(|name| name.to_string())
            .unwrap_or_else(|| arg.get_id().to_string().to_uppercase());
        let many = matches!(arg.get_action(), clap::ArgAction::Append);
        words.push(if many { format!("{name}...") } else { name });
    }
    words.join(" ")
}

/// How parsing ended when it did not give a command to run.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Help or the version was asked for (or nothing at all): print this on stdout, exit 0.
    Print(String),
    /// A usage error: this one line on stderr, exit 2.
    Usage(String),
}

/// Parses the process's arguments (`args` includes the program name).
pub(crate) fn parse(args: &[std::ffi::OsString]) -> Result<Cli, Stop> {
    let mut command = command();
    let matches = match command.try_get_matches_from_mut(args) {
        Ok(matches) => matches,
        Err(error) => return Err(stop(&error, &command, args)),
    };
    if let Some((name, sub)) = matches.subcommand() {
        // The global flags are accepted everywhere by clap; only some commands use them.
        let uses: &[&str] = match name {
            "serve" | "bench" | "backup" | "migrate" | "verify" | "completions" | "version" => &[],
            "listen" => &["server", "token", "json"],
            _ => &["server", "token", "json"],
        };
        for flag in ["server", "token", "json"] {
            if !uses.contains(&flag)
                && sub.value_source(flag) == Some(clap::parser::ValueSource::CommandLine)
            {
                return Err(Stop::Usage(format!(
                    "--{flag} is for the commands that call the API, not {name} \
                     (see clockeye-webhooks {name} --help)"
                )));
            }
        }
    }
    let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches)
        .map_err(|error| stop(&error, &command, args))?;
    match cli.command {
        None => Err(Stop::Print(format!(
            "{}\n",
            command.render_help().to_string().trim_end()
        ))),
        Some(Command::Version) => Err(Stop::Print(version())),
        Some(_) => Ok(cli),
    }
}

fn version() -> String {
    format!("clockeye-webhooks {}\n", env!("CARGO_PKG_VERSION"))
}

fn stop(error: &clap::Error, command: &clap::Command, args: &[std::ffi::OsString]) -> Stop {
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let text = error.render().to_string();
            Stop::Print(format!("{}\n", text.trim_end()))
        }
        ErrorKind::DisplayVersion => Stop::Print(version()),
        _ => Stop::Usage(error_line(error, &command_words(command, args))),
    }
}

/// The words of the command being parsed, e.g. `endpoints list`, from the arguments given.
fn command_words(command: &clap::Command, args: &[std::ffi::OsString]) -> String {
    let mut words = Vec::new();
    let mut current = command;
    for arg in args.iter().skip(1) {
        let Some(arg) = arg.to_str() else { continue };
        if arg == "--" {
            break;
        }
        if let Some(sub) = current.find_subcommand(arg) {
            words.push(sub.get_name().to_string());
            current = sub;
        }
    }
    words.join(" ")
}

fn context(error: &clap::Error, kind: ContextKind) -> Option<String> {
    match error.get(kind)? {
        ContextValue::String(text) => Some(text.clone()),
        ContextValue::Strings(texts) => Some(texts.join(", ")),
        ContextValue::StyledStr(text) => Some(text.to_string()),
        other => Some(other.to_string()),
    }
}

/// A clap error as the one line SPEC asks for, naming the flag or value: e.g.
/// `--retry-schedule: "5x" is not a duration (…)`, `unknown flag --frob (see …)`.
pub(crate) fn error_line(error: &clap::Error, words: &str) -> String {
    let see = if words.is_empty() || words == "help" {
        "see clockeye-webhooks --help".to_string()
    } else {
        format!("see clockeye-webhooks {words} --help")
    };
    // `--retry-schedule <LIST>` → `--retry-schedule`; `<ID>` → `ID`.
    let arg = context(error, ContextKind::InvalidArg).map(|arg| {
        let name = arg.split_whitespace().next().unwrap_or("").to_string();
        name.trim_start_matches('<')
            .trim_end_matches('>')
            .to_string()
    });
    let value = context(error, ContextKind::InvalidValue);
    match (error.kind(), arg, value) {
        (ErrorKind::UnknownArgument, Some(arg), _) if arg.starts_with('-') => {
            format!("unknown flag {arg} ({see})")
        }
        (ErrorKind::UnknownArgument, Some(arg), _) => {
            format!("unexpected argument \"{arg}\" ({see})")
        }
        (ErrorKind::InvalidSubcommand, ..) => {
            let word = context(error, ContextKind::InvalidSubcommand).unwrap_or_default();
            // `help frob` asks about the command `frob`.
            let words = words.strip_prefix("help").unwrap_or(words);
            let command = [words.trim(), &word].join(" ");
            format!("unknown command \"{}\" ({see})", command.trim())
        }
        (ErrorKind::ValueValidation, Some(arg), _) => match std::error::Error::source(error) {
            Some(source) => format!("{arg}: {source}"),
            None => format!("{arg}: {}", first_line(error)),
        },
        (ErrorKind::InvalidValue, Some(arg), Some(value)) if value.is_empty() => {
            format!("{arg} needs a value")
        }
        (ErrorKind::InvalidValue, Some(arg), Some(value)) => {
            let valid = context(error, ContextKind::ValidValue).unwrap_or_default();
            format!("{arg}: \"{value}\" is not one of: {valid}")
        }
        (ErrorKind::TooManyValues, Some(arg), _) if arg.starts_with('-') => {
            format!("{arg} takes no value ({see})")
        }
        (ErrorKind::MissingRequiredArgument, ..) => {
            let missing = context(error, ContextKind::InvalidArg)
                .unwrap_or_default()
                .replace(['<', '>'], "");
            format!("{words} needs {missing} ({see})")
                .trim()
                .to_string()
        }
        (ErrorKind::ArgumentConflict, Some(arg), _) => {
            let prior = context(error, ContextKind::PriorArg).unwrap_or_default();
            format!("{arg} and {prior} do not go together")
        }
        _ => format!("{} ({see})", first_line(error)),
    }
}

/// clap's own message, first line, without its `error: ` prefix.
fn first_line(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let line = text.lines().next().unwrap_or("").trim();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}
