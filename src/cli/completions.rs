//! `completions bash|zsh|fish`: completion scripts made by clap_complete from the one clap
//! definition (`args.rs`), so they offer every command and flag there is, `serve`'s, `bench`'s
//! and `backup`'s included. Event types (for `send`, `--type`, `--events`) come from the catalog.

use clap::builder::PossibleValuesParser;

use super::Outcome;
use super::args::{self, Shell};
use crate::catalog;

const PROGRAM: &str = "clockeye-webhooks";

pub(crate) fn main(shell: Shell) -> Outcome {
    let mut command = with_event_types(args::command());
    let mut script = Vec::new();
    match shell {
        Shell::Bash => {
            // clap_complete 4.6 names a subcommand's case differently in two places when the
            // program's name has a `-`; generated under a name without one, the script is
            // consistent, then registered for the real name.
            let mut generated = Vec::new();
            let name = PROGRAM.replace('-', "_");
            clap_complete::generate(
                clap_complete::Shell::Bash,
                &mut command,
                &name,
                &mut generated,
            );
            let generated = String::from_utf8_lossy(&generated)
                .replace("_clockeye_webhooks() {", "_clockeye_webhooks_clap() {")
                .replace(&format!(" {name}\n"), &format!(" {PROGRAM}\n"));
            script.extend_from_slice(generated.as_bytes());
            // The function `complete` calls: its words from COMP_WORDS alone, so it can also be
            // called by hand (as the tests do).
            script.extend_from_slice(
                b"_clockeye_webhooks() {\n    _clockeye_webhooks_clap \"${COMP_WORDS[0]}\" \"${COMP_WORDS[COMP_CWORD]}\" \"${COMP_WORDS[COMP_CWORD-1]}\"\n}\n",
            );
        }
        Shell::Zsh => clap_complete::generate(
            clap_complete::Shell::Zsh,
            &mut command,
            PROGRAM,
            &mut script,
        ),
        Shell::Fish => {
            // fish offers a command's words alone, as `complete -C` prints them (without the
            // about text, which fish would print after a tab).
            let mut command = without_about(command);
            clap_complete::generate(
                clap_complete::Shell::Fish,
                &mut command,
                PROGRAM,
                &mut script,
            )
        }
    }
    print!("{}", String::from_utf8_lossy(&script));
    Ok(())
}

/// The command line with the catalog's event types as the values to offer for `send TYPE`,
/// `--type` and `--events` (and `serve --log-format`'s two). Only for completions: parsing accepts other types (the server is
/// the judge, and `send` sends an unknown type when given `--data`).
fn with_event_types(command: clap::Command) -> clap::Command {
    let types = || PossibleValuesParser::new(catalog::EVENT_TYPES.iter().map(|t| t.name));
    command
        .mut_subcommand("serve", |serve| {
            serve.mut_arg("log_format", |arg| arg.value_parser(["text", "json"]))
        })
        .mut_subcommand("send", |send| {
            send.mut_arg("event_type", |arg| arg.value_parser(types()))
        })
        .mut_subcommand("endpoints", |endpoints| {
            endpoints
                .mut_subcommand("test", |test| {
                    test.mut_arg("event_type", |arg| arg.value_parser(types()))
                })
                .mut_subcommand("add", |add| {
                    add.mut_arg("events", |arg| arg.value_parser(types()))
                })
                .mut_subcommand("update", |update| {
                    update.mut_arg("events", |arg| arg.value_parser(types()))
                })
        })
}

fn without_about(command: clap::Command) -> clap::Command {
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_string())
        .collect();
    names.iter().fold(command, |command, name| {
        command.mut_subcommand(name, |sub| without_about(sub.about(None)))
    })
}
