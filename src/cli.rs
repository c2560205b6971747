//! `sellerdesk user add|list|disable`: user management from the shell, for the first admin of
//! a locked-down host and for scripts. Passwords never come from argv (they would show in
//! `ps` and shell history): they are asked for without echo, or read from stdin.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;

use sellerdesk::auth::Passwords;
use sellerdesk::domain::{
    Actor, NewPassword, NewUser, PageRequest, Role, SellerId, UserPatch, Username,
};
use sellerdesk::store::{self, StoreError, StoreOptions};

#[derive(Debug)]
pub enum UserCommand {
    Add {
        username: Username,
        role: Role,
        seller_ids: Vec<SellerId>,
        password_stdin: bool,
    },
    List,
    Disable {
        username: String,
    },
}

impl UserCommand {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        match args.first().map(String::as_str) {
            Some("add") => {
                let (mut username, mut role, mut seller_ids, mut password_stdin) =
                    (None, None, Vec::new(), false);
                let mut rest = args[1..].iter();
                while let Some(flag) = rest.next() {
                    let mut value = || {
                        rest.next()
                            .cloned()
                            .ok_or_else(|| format!("{flag} needs a value"))
                    };
                    match flag.as_str() {
                        "--username" => username = Some(Username::parse(&value()?).map_err(|e| format!("--username {e}"))?),
                        "--role" => role = Some(Role::parse(&value()?).map_err(|e| format!("--role {e}"))?),
                        "--seller-id" => seller_ids.push(SellerId::parse(&value()?).map_err(|e| format!("--seller-id {e}"))?),
                        "--password-stdin" => password_stdin = true,
                        "--password" => return Err("passwords are never taken from the command line; use --password-stdin or the prompt".into()),
                        other => return Err(format!("unknown option {other}")),
                    }
                }
                let username = username.ok_or("--username is required")?;
                let role = role.ok_or("--role is required")?;
                if role == Role::Seller && seller_ids.is_empty() {
                    return Err("a seller needs at least one --seller-id".into());
                }
                role.check_sellers(&seller_ids)
                    .map_err(|e| format!("--seller-id: {e}"))?;
                Ok(Self::Add {
                    username,
                    role,
                    seller_ids,
                    password_stdin,
                })
            }
            Some("list") if args.len() == 1 => Ok(Self::List),
            Some("disable") if args.len() == 2 => Ok(Self::Disable {
                username: args[1].clone(),
            }),
            _ => Err("expected: user add | user list | user disable NAME".into()),
        }
    }
}

/// Reads the password: from stdin (first line) with `--password-stdin`, else from a prompt on
/// the terminal with echo off.
fn read_password(from_stdin: bool) -> anyhow::Result<NewPassword> {
    let stdin = std::io::stdin();
    let line = if from_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        line
    } else {
        eprint!("Password for the new user: ");
        std::io::stderr().flush()?;
        let _ = std::process::Command::new("stty")
            .arg("-echo")
            .stdin(std::process::Stdio::inherit())
            .status();
        let mut line = String::new();
        let read = stdin.lock().read_line(&mut line);
        let _ = std::process::Command::new("stty")
            .arg("echo")
            .stdin(std::process::Stdio::inherit())
            .status();
        eprintln!();
        read?;
        line
    };
    let password = line.trim_end_matches(['\r', '\n']);
    NewPassword::parse(password).map_err(|e| anyhow::anyhow!("the password {e}"))
}

pub async fn run(command: UserCommand, options: &StoreOptions) -> anyhow::Result<()> {
    let store = store::connect(options).await?;
    let result = async {
        match command {
            UserCommand::Add {
                username,
                role,
                seller_ids,
                password_stdin,
            } => {
                let password = read_password(password_stdin)?;
                let password_hash = Passwords::new()
                    .hash(password.expose())
                    .await
                    .context("cannot hash the password")?;
                let new = NewUser {
                    username,
                    password_hash,
                    role,
                    seller_ids,
                };
                match store.create_user(&new, &Actor::system()).await {
                    Ok(user) => println!(
                        "created user {} (id {}, {})",
                        user.username.as_str(),
                        user.id,
                        user.role.as_str()
                    ),
                    Err(StoreError::Conflict) => {
                        anyhow::bail!("the username {} is taken", new.username.as_str())
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            UserCommand::List => {
                let mut page = PageRequest {
                    page: 1,
                    size: PageRequest::MAX_SIZE,
                };
                println!(
                    "{:>6}  {:<24} {:<7} {:<7} sellers",
                    "id", "username", "role", "active"
                );
                loop {
                    let listed = store.list_users(page).await?;
                    for u in &listed.items {
                        let sellers: Vec<&str> =
                            u.seller_ids.iter().map(SellerId::as_str).collect();
                        println!(
                            "{:>6}  {:<24} {:<7} {:<7} {}",
                            u.id,
                            u.username.as_str(),
                            u.role.as_str(),
                            u.is_active,
                            sellers.join(",")
                        );
                    }
                    if u64::from(page.page) * u64::from(page.size) >= listed.total {
                        break;
                    }
                    page.page += 1;
                }
            }
            UserCommand::Disable { username } => {
                let Some((user, _)) = store.find_login(&username).await? else {
                    anyhow::bail!("no user named {username}");
                };
                let patch = UserPatch {
                    is_active: Some(false),
                    ..UserPatch::default()
                };
                store.update_user(user.id, &patch, &Actor::system()).await?;
                println!("disabled user {username}; their refresh tokens are revoked");
            }
        }
        Ok(())
    }
    .await;
    store.close().await;
    result
}
