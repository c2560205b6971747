//! The `sellerdesk` binary: `serve` (the default), `migrate`, or `user ...` (`cli.rs`).
//!
//! Thin on purpose: read the configuration, set up logging, open the store, and serve the
//! router that `sellerdesk::build_app` builds. Everything testable lives in the library.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

mod cli;

/// mimalloc instead of glibc's allocator: the request path allocates a lot of small, short-lived
/// objects, and under load glibc's malloc/free were the largest item in the profile
/// (bench/RESULTS.md has the before and after). Built without transparent huge pages (see
/// Cargo.toml): with them, resident memory grows in 2 MiB steps.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use sellerdesk::auth::{bootstrap_admin, BootstrapAdmin};
use sellerdesk::background::Background;
use sellerdesk::config::{AppEnv, Config, LogFormat};
use sellerdesk::store::{self, StoreOptions};
use sellerdesk::{build_app, monitoring, server, AppState};
use tracing_subscriber::EnvFilter;

const USAGE: &str = "usage: sellerdesk [serve | migrate | user ... | help]\n\n\
  serve                 run the HTTP API (the default)\n\
  migrate               apply pending database migrations and exit\n\
  user add --username NAME --role admin|seller [--seller-id ID]... [--password-stdin]\n\
                        create a user; the password is asked for, or read from stdin\n\
  user list             list users\n\
  user disable NAME     deactivate a user and revoke their refresh tokens\n\n\
Settings come from the environment (and .env in development); see .env.example.";

/// How long a request waits for a pooled connection (MySQL's, or a SQLite reader) before it is
/// answered 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str).unwrap_or("serve");
    if matches!(command, "help" | "-h" | "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let user_command = match command {
        "serve" | "migrate" if args.len() <= 1 => None,
        "user" => match cli::UserCommand::parse(&args[1..]) {
            Ok(user_command) => Some(user_command),
            Err(e) => {
                eprintln!("sellerdesk: {e}\n\n{USAGE}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };

    // `.env` is a development convenience; production reads the real environment only.
    if std::env::var("APP_ENV").as_deref() != Ok("production") {
        let _ = dotenvy::dotenv();
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("sellerdesk: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the operating system lets us start a Tokio runtime");
    let result = runtime.block_on(async {
        match (command, user_command) {
            (_, Some(user_command)) => cli::run(user_command, &store_options(&config)).await,
            ("migrate", _) => migrate(&config).await,
            _ => serve(config).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("sellerdesk: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The log goes to stdout: JSON lines, or readable text that is coloured only on a terminal
/// (colour codes in a file or the journal are noise).
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal());
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Pretty => builder.init(),
    }
}

fn store_options(config: &Config) -> StoreOptions {
    StoreOptions {
        url: config.database_url.expose().to_owned(),
        max_connections: config.database_max_connections,
        acquire_timeout: ACQUIRE_TIMEOUT,
        durability: config.sqlite_durability,
    }
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let store = store::connect(&store_options(config)).await?;
    store.close().await;
    tracing::info!("migrations applied");
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    if config.secret_key_generated {
        tracing::warn!(
            "SECRET_KEY is not set: using a random key for this run; tokens will not survive a restart"
        );
    }
    if config.app_env == AppEnv::Development {
        tracing::info!("running in development mode");
    }
    // Before anything records: without the recorder, every metric is a no-op.
    let metrics = match config.metrics_addr {
        Some(_) => Some(monitoring::install()?),
        None => None,
    };
    let store = store::connect(&store_options(&config)).await?;
    let metrics = metrics.map(|handle| monitoring::router(handle, store.clone()));
    let state = AppState::new(store.clone(), config);
    match bootstrap_admin(store.as_ref(), &state.config, &state.auth.passwords).await {
        Ok(Some(BootstrapAdmin {
            generated_password: Some(password),
        })) => {
            // Printed once, to the console only (not through the log, which may be shipped
            // elsewhere): the operator needs it to log in the first time.
            eprintln!(
                "\n  No users existed, so an admin was created.\n  username: admin\n  password: {password}\n  \
                 Log in and change it (PATCH /api/v1/users/{{id}}); it is not shown again.\n"
            );
        }
        Ok(Some(_)) => tracing::info!("created the admin user with ADMIN_PASSWORD"),
        Ok(None) => {}
        Err(e) => return Err(anyhow::Error::new(e).context("cannot create the first admin user")),
    }
    let config = state.config.clone();
    let background = Background::start(store.clone(), &config);
    server::serve(build_app(state), metrics, config).await?;
    background.shutdown().await;
    // In-flight requests have finished; close the pool so the database sees clean exits.
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}
