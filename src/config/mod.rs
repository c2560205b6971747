//! `Config`: every setting the service reads from its environment, in one typed struct, read
//! once at start-up. Operators find the same list, with defaults, in `.env.example` and
//! `docs/security.md`.
//!
//! Reading order: this file (the settings, their defaults, and `from_lookup`, which checks
//! them in a fixed order and stops at the first bad one), then `env.rs` (how each kind of value
//! is read, and `ConfigError`, which names the variable), then `secret.rs` (`Secret` and the
//! signing-key rules). Errors never echo a secret. Tests build a `Config` in code from
//! `Config::default()`, the development defaults.

mod env;
mod secret;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

pub use env::ConfigError;
pub use secret::{Secret, MIN_SECRET_KEY_BYTES};

use self::env::{bad, Env};
use crate::domain::{NewPassword, RetryPolicy};
use crate::middleware::Cidr;
use crate::store::Durability;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The HMAC algorithm of access tokens; no other kind of algorithm is ever accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    Hs256,
    Hs384,
    Hs512,
}

/// Every setting of the service.
#[derive(Debug, Clone)]
pub struct Config {
    /// `APP_ENV`: development (default) or production, which insists on TLS and a real key.
    pub app_env: AppEnv,
    /// `HOST`: the address to listen on (127.0.0.1).
    pub host: IpAddr,
    /// `PORT`: the port to listen on (8000).
    pub port: u16,
    /// `DATABASE_URL`: `sqlite://…` or `mysql://…`; may hold a password, so it is a secret.
    pub database_url: Secret,
    /// `DATABASE_MAX_CONNECTIONS`: pool size (for SQLite, the readers); unset, each backend's
    /// own default (`StoreOptions::mysql_connections`, `StoreOptions::sqlite_readers`).
    pub database_max_connections: Option<u32>,
    /// `SQLITE_SYNCHRONOUS`: normal (default) or full; what an acknowledged SQLite write
    /// survives (README, "Durability").
    pub sqlite_durability: Durability,
    /// `SECRET_KEY`: the JWT signing key, at least 32 bytes.
    pub secret_key: Secret,
    /// True when no `SECRET_KEY` was given and a random one was made (development only).
    pub secret_key_generated: bool,
    /// `ALGORITHM`: HS256 (default), HS384 or HS512.
    pub algorithm: JwtAlgorithm,
    /// `ACCESS_TOKEN_EXPIRE_MINUTES` (120).
    pub access_token_ttl: Duration,
    /// `REFRESH_TOKEN_EXPIRE_DAYS` (7).
    pub refresh_token_ttl: Duration,
    /// `EVENT_RETENTION_DAYS` (7): how long the event feed keeps an event before the
    /// background purge deletes it (1 to 365 days).
    pub event_retention: Duration,
    /// `RATE_LIMIT_PER_MINUTE`: requests per client IP per minute (60); 0 turns it off.
    pub rate_limit_per_minute: u32,
    /// `LOGIN_RATE_LIMIT_PER_MINUTE`: token requests per client IP per minute (10); 0 off.
    pub login_rate_limit_per_minute: u32,
    /// `TRUSTED_PROXIES`: comma-separated CIDRs whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Vec<Cidr>,
    /// `TLS_CERT_PATH` and `TLS_KEY_PATH`: PEM files; both or neither.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `HTTP_REDIRECT_PORT`: a plain-HTTP port that redirects to HTTPS.
    pub http_redirect_port: Option<u16>,
    /// `PUBLIC_HOST`: the host name (optionally `:port`) clients reach the HTTPS service by;
    /// the redirect listener sends everyone there, never to the `Host` a request names.
    /// Required with `HTTP_REDIRECT_PORT`.
    pub public_host: Option<String>,
    /// `HEADER_READ_TIMEOUT_SECS`: how long a connection may go without a complete request
    /// head, counted from its opening or its previous response (20 s, at most 60). It is
    /// also how long an idle keep-alive connection is kept.
    pub header_read_timeout: Duration,
    /// `MAX_CONNECTIONS`: connections served at once, over all listeners (1000); more wait
    /// for a free slot up to the header read timeout, then are closed.
    pub max_connections: usize,
    /// `TLS_TERMINATED_UPSTREAM`: TLS ends at a proxy in front of us (false).
    pub tls_terminated_upstream: bool,
    /// `LOG_FORMAT`: pretty (default) or json.
    pub log_format: LogFormat,
    /// `CORS_ORIGINS`: comma-separated origins allowed to call the API from a browser.
    pub cors_origins: Vec<String>,
    /// `ADMIN_PASSWORD`: the first admin's password when the user table is empty; it follows
    /// the rules of every password (`NewPassword`), so a short one stops start-up.
    pub admin_password: Option<Secret>,
    /// `METRICS_ADDR`: an address (`127.0.0.1:9100`) where a listener of its own serves
    /// Prometheus metrics at `/metrics`; unset (the default), no metrics are kept or served.
    pub metrics_addr: Option<SocketAddr>,
    /// `REDIS_URL` (with `REDIS_KEY_PREFIX`): a Redis that every instance shares its per-IP
    /// limits and login backoff through; unset (the default), each instance counts alone.
    pub redis: Option<RedisConfig>,
    /// `WEBHOOK_ALLOW_PRIVATE` (default false): whether webhooks may target loopback, private,
    /// link-local and other non-public addresses (docs/webhooks.md, "Which targets").
    pub webhook_allow_private: bool,
    /// When failed webhook deliveries are retried and given up (not an environment variable:
    /// 1 s doubling to at most 1 h, given up after 24 h; tests shorten it).
    pub webhook_retry: RetryPolicy,
}

/// Where the limits shared by every instance live (`crate::limits::redis`).
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `REDIS_URL`: `redis://[user:password@]host[:port][/db]`; may hold a password.
    pub url: Secret,
    /// `REDIS_KEY_PREFIX` (`sellerdesk`): the start of every key, so that several deployments
    /// (or parallel test runs) can share one Redis without sharing counters.
    pub key_prefix: String,
}

/// `REDIS_KEY_PREFIX` when unset.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "sellerdesk";

impl Default for Config {
    /// The development defaults, with a fresh random signing key.
    fn default() -> Self {
        Self {
            app_env: AppEnv::Development,
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8000,
            database_url: Secret::new("sqlite://sellerdesk.db"),
            database_max_connections: None,
            sqlite_durability: Durability::Normal,
            secret_key: secret::random_key(),
            secret_key_generated: true,
            algorithm: JwtAlgorithm::Hs256,
            access_token_ttl: Duration::from_secs(120 * 60),
            refresh_token_ttl: Duration::from_secs(7 * 24 * 3600),
            event_retention: Duration::from_secs(7 * 24 * 3600),
            rate_limit_per_minute: 60,
            login_rate_limit_per_minute: 10,
            trusted_proxies: Vec::new(),
            tls: None,
            http_redirect_port: None,
            public_host: None,
            header_read_timeout: Duration::from_secs(20),
            max_connections: 1000,
            tls_terminated_upstream: false,
            log_format: LogFormat::Pretty,
            cors_origins: Vec::new(),
            admin_password: None,
            metrics_addr: None,
            redis: None,
            webhook_allow_private: false,
            webhook_retry: RetryPolicy::default(),
        }
    }
}

const RATE_LIMIT_PROBLEM: &str = "must be a whole number (0 turns limiting off)";

impl Config {
    /// Reads the process environment (after `.env`, which `main` loads in development).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`; an empty value counts as unset. Checks run in the
    /// order below and the first bad setting is the error, so that a production start-up
    /// names a missing `DATABASE_URL` or `SECRET_KEY` before it complains about TLS.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        use JwtAlgorithm::{Hs256, Hs384, Hs512};

        let env = Env::new(&lookup);
        let app_env = env
            .choice(
                "APP_ENV",
                &[
                    ("development", AppEnv::Development),
                    ("production", AppEnv::Production),
                ],
            )?
            .unwrap_or(AppEnv::Development);
        let production = app_env == AppEnv::Production;
        let mut config = Self {
            app_env,
            ..Self::default()
        };
        config.host = env
            .parsed("HOST", "must be an IP address, such as 0.0.0.0")?
            .unwrap_or(config.host);
        config.port = env.port("PORT")?.unwrap_or(config.port);
        config.database_url = database_url(&env, production)?.unwrap_or(config.database_url);
        config.database_max_connections = env
            .number_in(
                "DATABASE_MAX_CONNECTIONS",
                1..=1000,
                "must be a number from 1 to 1000",
            )?
            .or(config.database_max_connections);
        if let Some(key) = secret_key(&env, production)? {
            config.secret_key = key;
            config.secret_key_generated = false;
        }
        config.algorithm = env
            .choice(
                "ALGORITHM",
                &[("HS256", Hs256), ("HS384", Hs384), ("HS512", Hs512)],
            )?
            .unwrap_or(config.algorithm);
        config.access_token_ttl = env
            .number_in(
                "ACCESS_TOKEN_EXPIRE_MINUTES",
                1..=10_080,
                "must be a number of minutes from 1 to 10080",
            )?
            .map_or(config.access_token_ttl, |minutes: u64| {
                Duration::from_secs(minutes * 60)
            });
        config.refresh_token_ttl = env
            .number_in(
                "REFRESH_TOKEN_EXPIRE_DAYS",
                1..=365,
                "must be a number of days from 1 to 365",
            )?
            .map_or(config.refresh_token_ttl, |days: u64| {
                Duration::from_secs(days * 24 * 3600)
            });
        config.event_retention = env
            .number_in(
                "EVENT_RETENTION_DAYS",
                1..=365,
                "must be a number of days from 1 to 365",
            )?
            .map_or(config.event_retention, |days: u64| {
                Duration::from_secs(days * 24 * 3600)
            });
        config.rate_limit_per_minute = env
            .parsed("RATE_LIMIT_PER_MINUTE", RATE_LIMIT_PROBLEM)?
            .unwrap_or(config.rate_limit_per_minute);
        config.login_rate_limit_per_minute = env
            .parsed("LOGIN_RATE_LIMIT_PER_MINUTE", RATE_LIMIT_PROBLEM)?
            .unwrap_or(config.login_rate_limit_per_minute);
        config.trusted_proxies = env
            .list(
                "TRUSTED_PROXIES",
                |cidr| cidr.parse::<Cidr>().ok(),
                "must be comma-separated CIDRs, such as 10.0.0.0/8",
            )?
            .unwrap_or(config.trusted_proxies);
        config.tls = tls_files(&env)?;
        config.http_redirect_port = env.port("HTTP_REDIRECT_PORT")?;
        if config.http_redirect_port.is_some() && config.tls.is_none() {
            return Err(bad(
                "HTTP_REDIRECT_PORT",
                "needs TLS_CERT_PATH and TLS_KEY_PATH",
            ));
        }
        config.public_host = env.read(
            "PUBLIC_HOST",
            public_host,
            "must be a host name, optionally with :port, such as api.example.com",
        )?;
        if config.http_redirect_port.is_some() && config.public_host.is_none() {
            return Err(bad(
                "PUBLIC_HOST",
                "is required with HTTP_REDIRECT_PORT: redirects go there, never to the Host a request names",
            ));
        }
        config.header_read_timeout = env
            .number_in(
                "HEADER_READ_TIMEOUT_SECS",
                1..=60,
                "must be a number of seconds from 1 to 60",
            )?
            .map_or(config.header_read_timeout, Duration::from_secs);
        config.max_connections = env
            .number_in(
                "MAX_CONNECTIONS",
                1..=1_000_000,
                "must be a number from 1 to 1000000",
            )?
            .unwrap_or(config.max_connections);
        config.metrics_addr = env.read(
            "METRICS_ADDR",
            |value| value.parse::<SocketAddr>().ok().filter(|a| a.port() != 0),
            "must be an address with a port, such as 127.0.0.1:9100",
        )?;
        if config.metrics_addr == Some(config.listen_addr()) {
            return Err(bad(
                "METRICS_ADDR",
                "must differ from HOST:PORT: metrics have a listener of their own",
            ));
        }
        config.redis = redis(&env)?;
        config.webhook_allow_private = env
            .flag("WEBHOOK_ALLOW_PRIVATE")?
            .unwrap_or(config.webhook_allow_private);
        config.tls_terminated_upstream = env
            .flag("TLS_TERMINATED_UPSTREAM")?
            .unwrap_or(config.tls_terminated_upstream);
        if production && config.tls.is_none() && !config.tls_terminated_upstream {
            return Err(bad(
                "TLS_CERT_PATH",
                "production needs TLS: set TLS_CERT_PATH and TLS_KEY_PATH, or TLS_TERMINATED_UPSTREAM=true behind a TLS proxy",
            ));
        }
        config.sqlite_durability = env
            .choice(
                "SQLITE_SYNCHRONOUS",
                &[("full", Durability::Full), ("normal", Durability::Normal)],
            )?
            .unwrap_or(config.sqlite_durability);
        config.log_format = env
            .choice(
                "LOG_FORMAT",
                &[("json", LogFormat::Json), ("pretty", LogFormat::Pretty)],
            )?
            .unwrap_or(config.log_format);
        config.cors_origins = env
            .list(
                "CORS_ORIGINS",
                cors_origin,
                "must be comma-separated origins, such as https://app.example.com",
            )?
            .unwrap_or(config.cors_origins);
        config.admin_password = env.read(
            "ADMIN_PASSWORD",
            |password| {
                NewPassword::parse(password)
                    .ok()
                    .map(|_| Secret::new(password))
            },
            NewPassword::RULE,
        )?;
        Ok(config)
    }

    /// The address to listen on.
    pub fn listen_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.host, self.port)
    }
}

/// `REDIS_URL` and `REDIS_KEY_PREFIX`. The URL is checked here (redis-rs reads it the same way
/// when it connects), so that a typo stops start-up instead of silently leaving every instance
/// on its own limits; the error never repeats the value, which may hold a password.
fn redis(env: &Env<'_>) -> Result<Option<RedisConfig>, ConfigError> {
    let key_prefix = env
        .read(
            "REDIS_KEY_PREFIX",
            |prefix| {
                let fits = prefix.len() <= 64
                    && prefix
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                fits.then(|| prefix.to_owned())
            },
            "must be 1 to 64 letters, digits, '-', '_' or '.'",
        )?
        .unwrap_or_else(|| DEFAULT_REDIS_KEY_PREFIX.to_owned());
    let url = env.read(
        "REDIS_URL",
        |url| {
            let plain = url.starts_with("redis://") || url.starts_with("redis+unix://");
            (plain && redis::Client::open(url).is_ok()).then(|| Secret::new(url))
        },
        "must be a redis:// URL, such as redis://127.0.0.1:6379 (rediss:// is not supported)",
    )?;
    Ok(url.map(|url| RedisConfig { url, key_prefix }))
}

/// `DATABASE_URL`, for a database we have a store for. Production has no default: it must say
/// where its data lives rather than quietly create `sellerdesk.db` in the working directory.
fn database_url(env: &Env<'_>, production: bool) -> Result<Option<Secret>, ConfigError> {
    let known = |url: &str| {
        ["sqlite:", "mysql:", "mariadb:"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
            .then(|| Secret::new(url))
    };
    let url = env.read(
        "DATABASE_URL",
        known,
        "must start with sqlite:, mysql: or mariadb:",
    )?;
    required_in_production(url, production, "DATABASE_URL")
}

/// `SECRET_KEY`, never a published value. Production has no default: a random key per start
/// would sign every user out at each restart, and differ between instances.
fn secret_key(env: &Env<'_>, production: bool) -> Result<Option<Secret>, ConfigError> {
    let key = env
        .text("SECRET_KEY")
        .map(secret::signing_key)
        .transpose()?;
    required_in_production(key, production, "SECRET_KEY")
}

fn required_in_production<T>(
    value: Option<T>,
    production: bool,
    var: &'static str,
) -> Result<Option<T>, ConfigError> {
    match value {
        None if production => Err(bad(var, "is required in production")),
        value => Ok(value),
    }
}

/// `TLS_CERT_PATH` and `TLS_KEY_PATH`: both, or neither (a certificate is useless without its
/// key, and the reverse).
fn tls_files(env: &Env<'_>) -> Result<Option<(PathBuf, PathBuf)>, ConfigError> {
    match (env.text("TLS_CERT_PATH"), env.text("TLS_KEY_PATH")) {
        (Some(cert), Some(key)) => Ok(Some((PathBuf::from(cert), PathBuf::from(key)))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(bad("TLS_KEY_PATH", "is required when TLS_CERT_PATH is set")),
        (None, Some(_)) => Err(bad("TLS_CERT_PATH", "is required when TLS_KEY_PATH is set")),
    }
}

/// `PUBLIC_HOST`: an authority without user info, scheme or path (`api.example.com`,
/// `api.example.com:8443`, `[2001:db8::1]`).
fn public_host(text: &str) -> Option<String> {
    let authority = text.parse::<axum::http::uri::Authority>().ok()?;
    (!text.contains('@') && !authority.host().is_empty()).then(|| text.to_owned())
}

/// One `CORS_ORIGINS` entry: an http(s) origin that can be sent back as a header value.
fn cors_origin(origin: &str) -> Option<String> {
    let ok = (origin.starts_with("https://") || origin.starts_with("http://"))
        && axum::http::HeaderValue::from_str(origin).is_ok();
    ok.then(|| origin.to_owned())
}
