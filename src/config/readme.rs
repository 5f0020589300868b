//! The README's configuration table is checked against the command line: every setting's
//! variable and flag on one row, and nothing listed that the binary does not have.

use std::collections::BTreeSet;

use clap::CommandFactory;

use super::Cli;

const README: &str = include_str!("../../README.md");

/// The `## Configuration` section, up to the next `## ` heading.
fn configuration_section() -> &'static str {
    let heading = "\n## Configuration\n";
    let start = README
        .find(heading)
        .expect("README has a ## Configuration section")
        + 1;
    let section = &README[start..];
    let end = section[heading.len()..]
        .find("\n## ")
        .map_or(section.len(), |end| end + heading.len());
    &section[..end]
}

/// The `code` spans of a piece of Markdown.
fn code_spans(text: &str) -> impl Iterator<Item = &str> {
    text.split('`').skip(1).step_by(2)
}

/// (variable, flag) pairs from the table: a row's variables go with its flags in order.
fn documented_settings() -> BTreeSet<(String, String)> {
    let mut settings = BTreeSet::new();
    for row in configuration_section()
        .lines()
        .filter(|line| line.starts_with('|'))
    {
        let cells: Vec<&str> = row.split('|').collect();
        let variables: Vec<&str> = code_spans(cells[1]).collect();
        let flags: Vec<&str> = code_spans(cells[2]).collect();
        assert_eq!(
            variables.len(),
            flags.len(),
            "a row names as many variables as flags, in the same order: {row}"
        );
        settings.extend(
            variables
                .into_iter()
                .zip(flags)
                .map(|(variable, flag)| (variable.to_owned(), flag.to_owned())),
        );
    }
    settings
}

/// Every argument of the command and of its subcommands.
fn arguments(command: &clap::Command) -> Vec<&clap::Arg> {
    command
        .get_arguments()
        .chain(command.get_subcommands().flat_map(arguments))
        .collect()
}

fn flag(arg: &clap::Arg) -> String {
    format!("--{}", arg.get_long().unwrap_or(arg.get_id().as_str()))
}

#[test]
fn readme_configuration_table_matches_the_command_line() {
    let command = Cli::command();
    let arguments = arguments(&command);
    let settings: BTreeSet<(String, String)> = arguments
        .iter()
        .filter_map(|arg| Some((arg.get_env()?.to_string_lossy().into_owned(), flag(arg))))
        .collect();
    let documented = documented_settings();

    let missing: Vec<_> = settings.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&settings).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "README's configuration table is out of date\n  missing: {missing:?}\n  listed but not in ssod: {unknown:?}"
    );
}

/// Subcommand options are not settings (no variable); the section names them in prose.
#[test]
fn readme_configuration_section_names_every_subcommand_option() {
    let command = Cli::command();
    let section = configuration_section();
    let missing: Vec<String> = arguments(&command)
        .into_iter()
        .filter(|arg| arg.get_env().is_none())
        .map(flag)
        .filter(|flag| !section.contains(flag.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "README's configuration section does not mention {missing:?}"
    );
}
