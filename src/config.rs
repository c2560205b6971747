//! `Config`: every setting of SPEC §8 in one typed struct, read once at start-up.
//!
//! `Config::from_env` checks each variable and stops at the first bad one with an error naming
//! it (never echoing a secret). Tests build a `Config` in code from `Config::default()`, the
//! development defaults.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use rand::RngCore;

use crate::middleware::Cidr;

/// A secret string (signing key, password): usable, but never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

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
    /// `DATABASE_MAX_CONNECTIONS`: pool size (10; for SQLite, the readers).
    pub database_max_connections: u32,
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
    /// `TLS_TERMINATED_UPSTREAM`: TLS ends at a proxy in front of us (false).
    pub tls_terminated_upstream: bool,
    /// `LOG_FORMAT`: pretty (default) or json.
    pub log_format: LogFormat,
    /// `CORS_ORIGINS`: comma-separated origins allowed to call the API from a browser.
    pub cors_origins: Vec<String>,
    /// `ADMIN_PASSWORD`: the first admin's password when the user table is empty.
    pub admin_password: Option<Secret>,
}

/// A bad setting: which variable, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

fn bad(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

/// Keys that appear in documentation and examples, refused in production.
const PLACEHOLDER_KEYS: [&str; 5] = [
    "change-me-to-a-random-string-of-at-least-32-bytes",
    "your-secret-key",
    "changeme",
    "change-me",
    "secret",
];

pub const MIN_SECRET_KEY_BYTES: usize = 32;

fn random_key() -> Secret {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    Secret(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Default for Config {
    /// The development defaults, with a fresh random signing key.
    fn default() -> Self {
        Self {
            app_env: AppEnv::Development,
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8000,
            database_url: Secret::new("sqlite://sellerdesk.db"),
            database_max_connections: 10,
            secret_key: random_key(),
            secret_key_generated: true,
            algorithm: JwtAlgorithm::Hs256,
            access_token_ttl: Duration::from_secs(120 * 60),
            refresh_token_ttl: Duration::from_secs(7 * 24 * 3600),
            rate_limit_per_minute: 60,
            login_rate_limit_per_minute: 10,
            trusted_proxies: Vec::new(),
            tls: None,
            http_redirect_port: None,
            tls_terminated_upstream: false,
            log_format: LogFormat::Pretty,
            cors_origins: Vec::new(),
            admin_password: None,
        }
    }
}

impl Config {
    /// Reads the process environment (after `.env`, which `main` loads in development).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`; an empty value counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let app_env = match get("APP_ENV").as_deref() {
            None | Some("development") => AppEnv::Development,
            Some("production") => AppEnv::Production,
            Some(_) => return Err(bad("APP_ENV", "must be development or production")),
        };
        let mut config = Self {
            app_env,
            ..Self::default()
        };
        let production = config.app_env == AppEnv::Production;
        if let Some(host) = get("HOST") {
            config.host = host
                .parse()
                .map_err(|_| bad("HOST", "must be an IP address, such as 0.0.0.0"))?;
        }
        if let Some(port) = get("PORT") {
            config.port =
                parse_port(&port).ok_or_else(|| bad("PORT", "must be a port from 1 to 65535"))?;
        }
        match get("DATABASE_URL") {
            Some(url)
                if url.starts_with("sqlite:")
                    || url.starts_with("mysql:")
                    || url.starts_with("mariadb:") =>
            {
                config.database_url = Secret(url);
            }
            Some(_) => {
                return Err(bad(
                    "DATABASE_URL",
                    "must start with sqlite:, mysql: or mariadb:",
                ))
            }
            None if production => return Err(bad("DATABASE_URL", "is required in production")),
            None => {}
        }
        if let Some(n) = get("DATABASE_MAX_CONNECTIONS") {
            config.database_max_connections = n
                .parse()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    bad(
                        "DATABASE_MAX_CONNECTIONS",
                        "must be a number from 1 to 1000",
                    )
                })?;
        }
        match get("SECRET_KEY") {
            Some(key) if key.len() < MIN_SECRET_KEY_BYTES => {
                return Err(bad(
                    "SECRET_KEY",
                    format!("must be at least {MIN_SECRET_KEY_BYTES} bytes"),
                ));
            }
            Some(key)
                if production && PLACEHOLDER_KEYS.contains(&key.to_ascii_lowercase().as_str()) =>
            {
                return Err(bad(
                    "SECRET_KEY",
                    "is a published placeholder; generate a random key",
                ));
            }
            Some(key) => {
                config.secret_key = Secret(key);
                config.secret_key_generated = false;
            }
            None if production => return Err(bad("SECRET_KEY", "is required in production")),
            None => {}
        }
        if let Some(alg) = get("ALGORITHM") {
            config.algorithm = match alg.as_str() {
                "HS256" => JwtAlgorithm::Hs256,
                "HS384" => JwtAlgorithm::Hs384,
                "HS512" => JwtAlgorithm::Hs512,
                _ => return Err(bad("ALGORITHM", "must be HS256, HS384 or HS512")),
            };
        }
        if let Some(minutes) = get("ACCESS_TOKEN_EXPIRE_MINUTES") {
            let minutes: u64 = minutes
                .parse()
                .ok()
                .filter(|m| (1..=10_080).contains(m))
                .ok_or_else(|| {
                    bad(
                        "ACCESS_TOKEN_EXPIRE_MINUTES",
                        "must be a number of minutes from 1 to 10080",
                    )
                })?;
            config.access_token_ttl = Duration::from_secs(minutes * 60);
        }
        if let Some(days) = get("REFRESH_TOKEN_EXPIRE_DAYS") {
            let days: u64 = days
                .parse()
                .ok()
                .filter(|d| (1..=365).contains(d))
                .ok_or_else(|| {
                    bad(
                        "REFRESH_TOKEN_EXPIRE_DAYS",
                        "must be a number of days from 1 to 365",
                    )
                })?;
            config.refresh_token_ttl = Duration::from_secs(days * 24 * 3600);
        }
        if let Some(rate) = get("RATE_LIMIT_PER_MINUTE") {
            config.rate_limit_per_minute = rate.parse().map_err(|_| {
                bad(
                    "RATE_LIMIT_PER_MINUTE",
                    "must be a whole number (0 turns limiting off)",
                )
            })?;
        }
        if let Some(rate) = get("LOGIN_RATE_LIMIT_PER_MINUTE") {
            config.login_rate_limit_per_minute = rate.parse().map_err(|_| {
                bad(
                    "LOGIN_RATE_LIMIT_PER_MINUTE",
                    "must be a whole number (0 turns limiting off)",
                )
            })?;
        }
        if let Some(list) = get("TRUSTED_PROXIES") {
            config.trusted_proxies = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|cidr| cidr.parse::<Cidr>())
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    bad(
                        "TRUSTED_PROXIES",
                        "must be comma-separated CIDRs, such as 10.0.0.0/8",
                    )
                })?;
        }
        config.tls = match (get("TLS_CERT_PATH"), get("TLS_KEY_PATH")) {
            (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
            (None, None) => None,
            (Some(_), None) => {
                return Err(bad("TLS_KEY_PATH", "is required when TLS_CERT_PATH is set"))
            }
            (None, Some(_)) => {
                return Err(bad("TLS_CERT_PATH", "is required when TLS_KEY_PATH is set"))
            }
        };
        if let Some(port) = get("HTTP_REDIRECT_PORT") {
            config.http_redirect_port = Some(
                parse_port(&port)
                    .ok_or_else(|| bad("HTTP_REDIRECT_PORT", "must be a port from 1 to 65535"))?,
            );
            if config.tls.is_none() {
                return Err(bad(
                    "HTTP_REDIRECT_PORT",
                    "needs TLS_CERT_PATH and TLS_KEY_PATH",
                ));
            }
        }
        if let Some(flag) = get("TLS_TERMINATED_UPSTREAM") {
            config.tls_terminated_upstream = parse_bool(&flag)
                .ok_or_else(|| bad("TLS_TERMINATED_UPSTREAM", "must be true or false"))?;
        }
        if production && config.tls.is_none() && !config.tls_terminated_upstream {
            return Err(bad(
                "TLS_CERT_PATH",
                "production needs TLS: set TLS_CERT_PATH and TLS_KEY_PATH, or TLS_TERMINATED_UPSTREAM=true behind a TLS proxy",
            ));
        }
        if let Some(format) = get("LOG_FORMAT") {
            config.log_format = match format.as_str() {
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                _ => return Err(bad("LOG_FORMAT", "must be json or pretty")),
            };
        }
        if let Some(origins) = get("CORS_ORIGINS") {
            config.cors_origins = origins
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|origin| {
                    let ok = (origin.starts_with("https://") || origin.starts_with("http://"))
                        && axum::http::HeaderValue::from_str(origin).is_ok();
                    ok.then(|| origin.to_owned()).ok_or_else(|| {
                        bad(
                            "CORS_ORIGINS",
                            "must be comma-separated origins, such as https://app.example.com",
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        config.admin_password = get("ADMIN_PASSWORD").map(Secret);
        Ok(config)
    }

    /// The address to listen on.
    pub fn listen_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.host, self.port)
    }
}

fn parse_port(text: &str) -> Option<u16> {
    text.parse::<u16>().ok().filter(|p| *p != 0)
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn an_empty_environment_gives_the_development_defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.app_env, AppEnv::Development);
        assert_eq!(c.listen_addr().to_string(), "127.0.0.1:8000");
        assert_eq!(c.database_url.expose(), "sqlite://sellerdesk.db");
        assert!(c.secret_key_generated);
        assert_eq!(c.secret_key.expose().len(), 64);
        assert_eq!(c.access_token_ttl, Duration::from_secs(7200));
        assert_eq!(c.refresh_token_ttl, Duration::from_secs(604_800));
        assert_eq!(c.rate_limit_per_minute, 60);
    }

    #[test]
    fn each_bad_value_is_reported_under_its_own_name() {
        let key = "k".repeat(32);
        for (vars, var) in [
            (vec![("PORT", "abc")], "PORT"),
            (vec![("PORT", "0")], "PORT"),
            (vec![("HOST", "not an ip")], "HOST"),
            (vec![("APP_ENV", "staging")], "APP_ENV"),
            (vec![("DATABASE_URL", "postgres://x")], "DATABASE_URL"),
            (vec![("SECRET_KEY", "short")], "SECRET_KEY"),
            (vec![("ALGORITHM", "RS256")], "ALGORITHM"),
            (vec![("ALGORITHM", "none")], "ALGORITHM"),
            (
                vec![("ACCESS_TOKEN_EXPIRE_MINUTES", "0")],
                "ACCESS_TOKEN_EXPIRE_MINUTES",
            ),
            (
                vec![("REFRESH_TOKEN_EXPIRE_DAYS", "x")],
                "REFRESH_TOKEN_EXPIRE_DAYS",
            ),
            (
                vec![("RATE_LIMIT_PER_MINUTE", "-1")],
                "RATE_LIMIT_PER_MINUTE",
            ),
            (vec![("TRUSTED_PROXIES", "10.0.0.0/33")], "TRUSTED_PROXIES"),
            (vec![("TLS_CERT_PATH", "/c.pem")], "TLS_KEY_PATH"),
            (vec![("LOG_FORMAT", "xml")], "LOG_FORMAT"),
            (vec![("CORS_ORIGINS", "*")], "CORS_ORIGINS"),
            (
                vec![("DATABASE_MAX_CONNECTIONS", "0")],
                "DATABASE_MAX_CONNECTIONS",
            ),
            (
                vec![("APP_ENV", "production"), ("SECRET_KEY", &key)],
                "DATABASE_URL",
            ),
            (
                vec![("APP_ENV", "production"), ("DATABASE_URL", "sqlite://x.db")],
                "SECRET_KEY",
            ),
            (
                vec![
                    ("APP_ENV", "production"),
                    ("DATABASE_URL", "sqlite://x.db"),
                    (
                        "SECRET_KEY",
                        "change-me-to-a-random-string-of-at-least-32-bytes",
                    ),
                ],
                "SECRET_KEY",
            ),
            (
                vec![
                    ("APP_ENV", "production"),
                    ("DATABASE_URL", "sqlite://x.db"),
                    ("SECRET_KEY", &key),
                ],
                "TLS_CERT_PATH",
            ),
        ] {
            let err = config(&vars).expect_err(&format!("{vars:?} should be refused"));
            assert_eq!(err.var, var, "{vars:?}");
        }
    }

    #[test]
    fn production_with_upstream_tls_and_a_real_key_starts() {
        let key = "k".repeat(40);
        let c = config(&[
            ("APP_ENV", "production"),
            ("DATABASE_URL", "mysql://u:p@db/sellerdesk"),
            ("SECRET_KEY", &key),
            ("TLS_TERMINATED_UPSTREAM", "true"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
        ])
        .unwrap();
        assert!(!c.secret_key_generated);
        assert!(c.trusted_proxies[0].contains("10.1.2.3".parse().unwrap()));
        assert!(!c.trusted_proxies[0].contains("11.1.2.3".parse().unwrap()));
        assert!(c.trusted_proxies[1].contains("::1".parse().unwrap()));
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let c = config(&[
            ("SECRET_KEY", &"s".repeat(40)),
            ("DATABASE_URL", "mysql://u:hunter2@db/x"),
        ])
        .unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains(&"s".repeat(40)),
            "{shown}"
        );
    }
}
