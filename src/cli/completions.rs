//! `completions bash|zsh|fish`: completion scripts made from `COMMANDS`, so they list every
//! command and flag there is. Event types (for `send`, `--type`, `--events`) come from the catalog.

use super::{COMMANDS, Command, GROUPS, Outcome, Parsed, flags_of, usage};
use crate::{catalog, config};

pub fn main(parsed: &Parsed) -> Outcome {
    let script = match parsed.positionals.as_slice() {
        [shell] if shell == "bash" => bash(),
        [shell] if shell == "zsh" => zsh(),
        [shell] if shell == "fish" => fish(),
        _ => return Err(usage("completions takes one shell: bash, zsh or fish")),
    };
    print!("{script}");
    Ok(())
}

/// First words: `serve`, `bench`, each command or group, `help`.
fn top_words() -> Vec<&'static str> {
    let mut words = vec!["serve", "bench", "backup", "help"];
    for command in COMMANDS {
        let first = command.name.split(' ').next().expect("a name");
        if !words.contains(&first) {
            words.push(first);
        }
    }
    words
}

fn subcommands(group: &str) -> Vec<&'static str> {
    COMMANDS
        .iter()
        .filter_map(|c| c.name.strip_prefix(group)?.strip_prefix(' '))
        .collect()
}

fn flag_words(command: &Command) -> String {
    let mut words: Vec<String> = flags_of(command).map(|f| format!("--{}", f.name)).collect();
    words.push("--help".into());
    words.join(" ")
}

fn serve_flags() -> String {
    let mut words: Vec<String> = config::serve_flag_names()
        .map(|name| format!("--{name}"))
        .collect();
    words.push("--help".into());
    words.join(" ")
}

fn event_types() -> String {
    catalog::EVENT_TYPES
        .iter()
        .map(|t| t.name)
        .collect::<Vec<_>>()
        .join(" ")
}

const STATUSES: &str = "pending delivering succeeded failed";

fn bash() -> String {
    let mut cases = String::new();
    for command in COMMANDS {
        let (first, sub) = command.name.split_once(' ').unwrap_or((command.name, ""));
        cases.push_str(&format!(
            "    \"{first} {sub}\") flags=\"{}\" ;;\n",
            flag_words(command)
        ));
    }
    let mut groups = String::new();
    for group in GROUPS {
        groups.push_str(&format!(
            "    {group}) [ \"$COMP_CWORD\" -eq 2 ] && {{ COMPREPLY=($(compgen -W \"{} --help\" -- \"$cur\")); return; }} ; key=\"{group} ${{COMP_WORDS[2]}}\" ;;\n",
            subcommands(group).join(" ")
        ));
    }
    format!(
        r#"# bash completion for clockeye-webhooks: source <(clockeye-webhooks completions bash)
_clockeye_webhooks() {{
  local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}" flags="" key
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "{top} --help --version" -- "$cur")); return
  fi
  case "$prev" in
    --type|--events) COMPREPLY=($(compgen -W "{types}" -- "$cur")); return ;;
    --status) [ "${{COMP_WORDS[1]}}" = listen ] || COMPREPLY=($(compgen -W "{statuses}" -- "$cur")); return ;;
  esac
  case "${{COMP_WORDS[1]}}" in
{groups}    *) key="${{COMP_WORDS[1]}} " ;;
  esac
  case "$key" in
    "serve ") flags="{serve}" ;;
    "send ") [ "$COMP_CWORD" -eq 2 ] && [[ "$cur" != -* ]] && {{ COMPREPLY=($(compgen -W "{types}" -- "$cur")); return; }}
      flags="{send}" ;;
    "completions ") COMPREPLY=($(compgen -W "bash zsh fish" -- "$cur")); return ;;
    "help ") COMPREPLY=($(compgen -W "{top}" -- "$cur")); return ;;
{cases}  esac
  COMPREPLY=($(compgen -W "$flags" -- "$cur"))
}}
complete -o default -F _clockeye_webhooks clockeye-webhooks
"#,
        top = top_words().join(" "),
        types = event_types(),
        statuses = STATUSES,
        serve = serve_flags(),
        send = flag_words(COMMANDS.iter().find(|c| c.name == "send").expect("send")),
    )
}

fn zsh() -> String {
    let mut cases = String::new();
    for command in COMMANDS {
        cases.push_str(&format!(
            "    '{}') flags=({}) ;;\n",
            command.name,
            flag_words(command)
        ));
    }
    let mut groups = String::new();
    for group in GROUPS {
        groups.push_str(&format!(
            "    {group}) (( CURRENT == 3 )) && {{ compadd -- {}; return }}; key=\"{group} ${{words[3]}}\" ;;\n",
            subcommands(group).join(" ")
        ));
    }
    format!(
        r#"#compdef clockeye-webhooks
# zsh completion for clockeye-webhooks: put it on $fpath as _clockeye-webhooks, or
# source <(clockeye-webhooks completions zsh) after compinit.
_clockeye_webhooks() {{
  local -a flags
  local key
  if (( CURRENT == 2 )); then
    compadd -- {top} --help --version; return
  fi
  case "${{words[CURRENT-1]}}" in
    --type|--events) compadd -- {types}; return ;;
    --status) [[ ${{words[2]}} == listen ]] || compadd -- {statuses}; return ;;
  esac
  case "${{words[2]}}" in
{groups}    *) key="${{words[2]}}" ;;
  esac
  case "$key" in
    serve) flags=({serve}) ;;
    completions) compadd -- bash zsh fish; return ;;
    help) compadd -- {top}; return ;;
    send) if (( CURRENT == 3 )) && [[ "${{words[CURRENT]}}" != -* ]]; then compadd -- {types}; return; fi
      flags=({send}) ;;
{cases}  esac
  if [[ "${{words[CURRENT]}}" == -* ]]; then
    compadd -- $flags
  else
    _files
  fi
}}
compdef _clockeye_webhooks clockeye-webhooks
"#,
        top = top_words().join(" "),
        types = event_types(),
        statuses = STATUSES,
        serve = serve_flags(),
        send = flag_words(COMMANDS.iter().find(|c| c.name == "send").expect("send")),
    )
}

fn fish() -> String {
    let program = "clockeye-webhooks";
    let mut text = format!(
        "# fish completion for clockeye-webhooks: save as ~/.config/fish/completions/clockeye-webhooks.fish\n\
         complete -c {program} -f\n\
         complete -c {program} -n __fish_use_subcommand -a '{}'\n",
        top_words().join(" ")
    );
    text.push_str(&format!(
        "complete -c {program} -n '__fish_seen_subcommand_from serve' -l '{}'\n",
        config::serve_flag_names()
            .collect::<Vec<_>>()
            .join("' -l '")
    ));
    text.push_str(&format!(
        "complete -c {program} -n '__fish_seen_subcommand_from completions' -a 'bash zsh fish'\n"
    ));
    text.push_str(&format!(
        "complete -c {program} -n '__fish_seen_subcommand_from send' -a '{}'\n",
        event_types()
    ));
    for group in GROUPS {
        let subs = subcommands(group).join(" ");
        text.push_str(&format!(
            "complete -c {program} -n '__fish_seen_subcommand_from {group}; and not __fish_seen_subcommand_from {subs}' -a '{subs}'\n"
        ));
    }
    for command in COMMANDS {
        let condition = match command.name.split_once(' ') {
            Some((group, sub)) => format!(
                "__fish_seen_subcommand_from {group}; and __fish_seen_subcommand_from {sub}"
            ),
            None => format!("__fish_seen_subcommand_from {}", command.name),
        };
        for flag in flags_of(command) {
            let takes = if flag.value.is_some() { " -r" } else { "" };
            let values = match flag.name {
                "type" | "events" => format!(" -a '{}'", event_types()),
                "status" if command.name == "deliveries list" => format!(" -a '{STATUSES}'"),
                _ => String::new(),
            };
            let help = flag.help.replace('\'', "\\'");
            text.push_str(&format!(
                "complete -c {program} -n '{condition}' -l {}{takes}{values} -d '{help}'\n",
                flag.name
            ));
        }
    }
    text
}
