//! `faxgate emails`: list, add, replace and remove mappings, and set SMTP AUTH
//! passwords. The commands open the daemon's own store, so they work while it runs.

use std::io::{BufRead, IsTerminal};

use clap::Subcommand;
use phonenumber::country::Id as Region;

use super::{Failure, print_stdout};
use crate::config::Config;
use crate::mappings::rules::{self, NumberPermissionError};
use crate::mappings::{Mapping, MappingError, Mappings, Permission};
use crate::number::Number;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub(super) enum EmailsCommand {
    /// List mappings, one line per email address with its numbers and permissions
    List {
        /// Only the mappings that contain this fax number
        #[arg(long, value_name = "N")]
        number: Option<String>,
    },
    /// Add a mapping for an email address that has none
    Add {
        /// Email address of the mapping, stored lower case
        email: String,
        /// Fax number and permission (send, receive or both; both when left out); repeat for more numbers
        #[arg(long = "number", value_name = "N[:PERM]", required = true)]
        numbers: Vec<String>,
    },
    /// Replace the numbers of an existing mapping
    Set {
        /// Email address of the mapping, stored lower case
        email: String,
        /// Fax number and permission (send, receive or both; both when left out); repeat for more numbers
        #[arg(long = "number", value_name = "N[:PERM]", required = true)]
        numbers: Vec<String>,
    },
    /// Remove a mapping with its numbers and password
    Remove {
        /// Email address of the mapping
        email: String,
    },
    /// Set the SMTP AUTH password of a mapped address, read from the first line of stdin
    Password {
        /// Email address of the mapping
        email: String,
    },
}

/// Runs one `emails` command against the store named by `config`.
pub(super) async fn execute(command: EmailsCommand, config: &Config) -> Result<(), Failure> {
    let region = config.gateway.default_region;

    // Arguments are checked before the store is opened, so a typo never touches it.
    match command {
        EmailsCommand::List { number } => {
            let number = number.map(|written| parse_number(&written, region)).transpose()?;
            let mappings = open(config).await?;
            list(&mappings, number.as_ref(), config).await
        }
        EmailsCommand::Add { email, numbers } => {
            let email = parse_email(&email)?;
            let numbers = parse_numbers(&numbers, region)?;
            let mapping = open(config).await?.add(&email, &numbers).await.map_err(|err| {
                mapping_failure(err, config, "use \"faxgate emails set\" to change its numbers")
            })?;
            print_stdout(&format!("added {}\n", format_mapping(&mapping)))
        }
        EmailsCommand::Set { email, numbers } => {
            let email = parse_email(&email)?;
            let numbers = parse_numbers(&numbers, region)?;
            let mapping = open(config)
                .await?
                .set(&email, &numbers)
                .await
                .map_err(|err| mapping_failure(err, config, "use \"faxgate emails add\" to create it"))?;
            print_stdout(&format!("updated {}\n", format_mapping(&mapping)))
        }
        EmailsCommand::Remove { email } => {
            let email = parse_email(&email)?;
            open(config).await?.remove(&email).await.map_err(|err| {
                mapping_failure(err, config, "\"faxgate emails list\" shows the addresses that have one")
            })?;
            print_stdout(&format!("removed {email}\n"))
        }
        EmailsCommand::Password { email } => {
            let email = parse_email(&email)?;
            let mappings = open(config).await?;
            password(&mappings, &email, config).await
        }
    }
}

/// Prints every mapping, fetching the maximum page size at a time.
async fn list(mappings: &Mappings, number: Option<&Number>, config: &Config) -> Result<(), Failure> {
    let mut page = 1;
    loop {
        let (batch, total) = mappings
            .list(number, page, rules::MAX_PAGE_SIZE)
            .await
            .map_err(|err| mapping_failure(err, config, ""))?;
        let lines: String = batch.iter().map(|mapping| format_mapping(mapping) + "\n").collect();
        print_stdout(&lines)?;
        if batch.is_empty() || u64::from(page) >= rules::total_pages(total, rules::MAX_PAGE_SIZE) {
            return Ok(());
        }
        page += 1;
    }
}

/// Sets the password read from stdin. The mapping is checked first, so a wrong address
/// fails before anyone types a password.
async fn password(mappings: &Mappings, email: &str, config: &Config) -> Result<(), Failure> {
    let found = mappings.get(email).await.map_err(|err| mapping_failure(err, config, ""))?;
    if found.is_none() {
        return Err(Failure::operational(format!(
            "{email} has no mapping; add one with \"faxgate emails add\" before setting its password"
        )));
    }

    let stdin = std::io::stdin();
    let line = if stdin.is_terminal() {
        // At a terminal the password is read with echo off, as passwd does.
        rpassword::prompt_password(format!("Password for {email}: "))
            .map_err(|err| Failure::operational(format!("cannot read the password from the terminal: {err}")))?
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|err| Failure::operational(format!("cannot read the password from standard input: {err}")))?;
        line
    };
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err(Failure::usage(format!(
            "the password for {email} is empty; write it on the first line of standard input"
        )));
    }

    mappings
        .set_password(email, password)
        .await
        .map_err(|err| mapping_failure(err, config, "add one with \"faxgate emails add\" first"))?;
    print_stdout(&format!("password set for {email}\n"))
}

async fn open(config: &Config) -> Result<Mappings, Failure> {
    let store = Store::open(&config.database_path()).await.map_err(|err| {
        Failure::operational(format!(
            "{err}; check that gateway.data_dir ({}) is writable by this user",
            config.gateway.data_dir.display()
        ))
    })?;
    Ok(Mappings::new(store))
}

fn parse_email(written: &str) -> Result<String, Failure> {
    rules::normalize_email(written)
        .map_err(|err| Failure::usage(format!("{err}; write it as name@domain, such as alice@example.com")))
}

fn parse_number(written: &str, region: Region) -> Result<Number, Failure> {
    Number::parse(written, region).map_err(|err| Failure::usage(number_hint(&err.to_string())))
}

fn parse_numbers(written: &[String], region: Region) -> Result<Vec<(Number, Permission)>, Failure> {
    let numbers = written
        .iter()
        .map(|value| {
            rules::parse_number_permission(value, region).map_err(|err| match err {
                NumberPermissionError::Number(err) => Failure::usage(number_hint(&err.to_string())),
                NumberPermissionError::Permission { .. } => Failure::usage(err.to_string()),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules::check_numbers(&numbers).map_err(|err| Failure::usage(format!("{err}; give each number once")))?;
    Ok(numbers)
}

fn number_hint(error: &str) -> String {
    format!("{error}; write it in E.164 form such as +14155550100")
}

/// Turns a store error into a failure. `hint` is what to do when the mapping exists
/// (for `add`) or is missing (for the others).
fn mapping_failure(err: MappingError, config: &Config, hint: &str) -> Failure {
    match &err {
        MappingError::Exists { .. } | MappingError::NotFound { .. } => Failure::operational(format!("{err}; {hint}")),
        _ if err.is_invalid_input() => Failure::usage(err.to_string()),
        _ => Failure::operational(format!("{}: {err}", config.database_path().display())),
    }
}

/// Formats a mapping as one line: `alice@example.com  +14155550100:send +14155550101:both`.
fn format_mapping(mapping: &Mapping) -> String {
    format!("{}  {}", mapping.email, mapping.numbers_display())
}
