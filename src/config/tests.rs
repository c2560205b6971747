//! Unit tests of `Config::from_lookup`: defaults, the variable each bad value is reported
//! under, what the problem says, and that secrets stay out of `Debug` output.

use std::path::PathBuf;
use std::time::Duration;

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
    assert_eq!(c.event_retention, Duration::from_secs(604_800));
    assert_eq!(c.rate_limit_per_minute, 60);
    assert_eq!(c.sqlite_durability, Durability::Normal);
    // Each backend's own pool size (`StoreOptions`).
    assert_eq!(c.database_max_connections, None);
    assert_eq!(c.header_read_timeout, Duration::from_secs(20));
    assert_eq!(c.max_connections, 1000);
    assert_eq!(c.public_host, None);
    assert_eq!(c.metrics_addr, None, "no metrics unless asked for");
    assert!(
        !c.webhook_allow_private,
        "webhooks reach public addresses only, unless asked"
    );
    assert!(c.redis.is_none(), "limits per instance unless REDIS_URL");
}

#[test]
fn redis_url_shares_the_limits_under_a_prefix() {
    let c = config(&[("REDIS_URL", "redis://127.0.0.1:6379/2")]).unwrap();
    let redis = c.redis.expect("REDIS_URL set");
    assert_eq!(redis.url.expose(), "redis://127.0.0.1:6379/2");
    assert_eq!(redis.key_prefix, "sellerdesk");
    let c = config(&[
        ("REDIS_URL", "redis://cache"),
        ("REDIS_KEY_PREFIX", "blue-eu.1"),
    ])
    .unwrap();
    assert_eq!(c.redis.unwrap().key_prefix, "blue-eu.1");
    let err = config(&[("REDIS_URL", "redis://:hunter2@[::1")]).unwrap_err();
    assert!(
        !err.to_string().contains("hunter2"),
        "the error never repeats the URL: {err}"
    );
}

#[test]
fn the_redirect_listener_needs_a_public_host_to_send_clients_to() {
    let tls = [
        ("TLS_CERT_PATH", "/c.pem"),
        ("TLS_KEY_PATH", "/k.pem"),
        ("HTTP_REDIRECT_PORT", "8080"),
    ];
    let err = config(&tls).unwrap_err();
    assert_eq!(err.var, "PUBLIC_HOST");
    let mut with_host = tls.to_vec();
    with_host.push(("PUBLIC_HOST", "api.example.com"));
    assert_eq!(
        config(&with_host).unwrap().public_host.as_deref(),
        Some("api.example.com")
    );
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
        (vec![("REDIS_URL", "localhost:6379")], "REDIS_URL"),
        (vec![("REDIS_URL", "rediss://cache:6380")], "REDIS_URL"),
        (vec![("REDIS_URL", "redis://[::1")], "REDIS_URL"),
        (
            vec![("REDIS_URL", "redis://x"), ("REDIS_KEY_PREFIX", "a b")],
            "REDIS_KEY_PREFIX",
        ),
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
        ("REDIS_URL", "redis://:hunter2@cache:6379/0"),
    ])
    .unwrap();
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains(&"s".repeat(40)),
        "{shown}"
    );
}

#[test]
fn every_variable_sets_its_own_setting() {
    let key = "k".repeat(32);
    let c = config(&[
        ("APP_ENV", "development"),
        ("HOST", " 0.0.0.0 "),
        ("PORT", "8443"),
        ("DATABASE_URL", "mariadb://u@db/x"),
        ("DATABASE_MAX_CONNECTIONS", "1000"),
        ("SECRET_KEY", &key),
        ("ALGORITHM", "HS512"),
        ("ACCESS_TOKEN_EXPIRE_MINUTES", "10080"),
        ("REFRESH_TOKEN_EXPIRE_DAYS", "1"),
        ("EVENT_RETENTION_DAYS", "30"),
        ("RATE_LIMIT_PER_MINUTE", "0"),
        ("LOGIN_RATE_LIMIT_PER_MINUTE", "3"),
        ("TRUSTED_PROXIES", ""),
        ("TLS_CERT_PATH", "/c.pem"),
        ("TLS_KEY_PATH", "/k.pem"),
        ("HTTP_REDIRECT_PORT", "8080"),
        ("PUBLIC_HOST", "api.example.com:8443"),
        ("HEADER_READ_TIMEOUT_SECS", "60"),
        ("MAX_CONNECTIONS", "20000"),
        ("TLS_TERMINATED_UPSTREAM", "no"),
        ("LOG_FORMAT", "json"),
        ("METRICS_ADDR", "127.0.0.1:9100"),
        ("SQLITE_SYNCHRONOUS", "full"),
        ("CORS_ORIGINS", "https://a.example, http://b.example:3000"),
        ("ADMIN_PASSWORD", "first-admin-password"),
        ("WEBHOOK_ALLOW_PRIVATE", "true"),
    ])
    .unwrap();
    assert!(c.webhook_allow_private);
    assert_eq!(c.listen_addr().to_string(), "0.0.0.0:8443");
    assert_eq!(c.database_url.expose(), "mariadb://u@db/x");
    assert_eq!(c.database_max_connections, Some(1000));
    assert_eq!(c.secret_key.expose(), key);
    assert!(!c.secret_key_generated);
    assert_eq!(c.algorithm, JwtAlgorithm::Hs512);
    assert_eq!(c.access_token_ttl, Duration::from_secs(10_080 * 60));
    assert_eq!(c.refresh_token_ttl, Duration::from_secs(24 * 3600));
    assert_eq!(c.event_retention, Duration::from_secs(30 * 24 * 3600));
    assert_eq!(c.rate_limit_per_minute, 0);
    assert_eq!(c.login_rate_limit_per_minute, 3);
    assert!(c.trusted_proxies.is_empty());
    assert_eq!(
        c.tls,
        Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem")))
    );
    assert_eq!(c.http_redirect_port, Some(8080));
    assert_eq!(c.public_host.as_deref(), Some("api.example.com:8443"));
    assert_eq!(c.header_read_timeout, Duration::from_secs(60));
    assert_eq!(c.max_connections, 20_000);
    assert!(!c.tls_terminated_upstream);
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(
        c.metrics_addr.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:9100")
    );
    assert_eq!(c.sqlite_durability, Durability::Full);
    assert_eq!(
        c.cors_origins,
        ["https://a.example", "http://b.example:3000"]
    );
    assert_eq!(
        c.admin_password.as_ref().map(Secret::expose),
        Some("first-admin-password")
    );
}

#[test]
fn each_problem_says_what_the_value_must_be() {
    for (var, value, problem) in [
        ("APP_ENV", "Production", "must be development or production"),
        (
            "HOST",
            "localhost",
            "must be an IP address, such as 0.0.0.0",
        ),
        ("PORT", "65536", "must be a port from 1 to 65535"),
        (
            "DATABASE_URL",
            "postgres://x",
            "must start with sqlite:, mysql: or mariadb:",
        ),
        (
            "DATABASE_MAX_CONNECTIONS",
            "1001",
            "must be a number from 1 to 1000",
        ),
        ("SECRET_KEY", "short", "must be at least 32 bytes"),
        ("ALGORITHM", "hs256", "must be HS256, HS384 or HS512"),
        (
            "ACCESS_TOKEN_EXPIRE_MINUTES",
            "10081",
            "must be a number of minutes from 1 to 10080",
        ),
        (
            "REFRESH_TOKEN_EXPIRE_DAYS",
            "366",
            "must be a number of days from 1 to 365",
        ),
        (
            "RATE_LIMIT_PER_MINUTE",
            "1.5",
            "must be a whole number (0 turns limiting off)",
        ),
        (
            "LOGIN_RATE_LIMIT_PER_MINUTE",
            "x",
            "must be a whole number (0 turns limiting off)",
        ),
        (
            "TRUSTED_PROXIES",
            "10.0.0.0/8, proxy",
            "must be comma-separated CIDRs, such as 10.0.0.0/8",
        ),
        (
            "HTTP_REDIRECT_PORT",
            "8080",
            "needs TLS_CERT_PATH and TLS_KEY_PATH",
        ),
        ("TLS_TERMINATED_UPSTREAM", "maybe", "must be true or false"),
        (
            "WEBHOOK_ALLOW_PRIVATE",
            "sometimes",
            "must be true or false",
        ),
        ("LOG_FORMAT", "JSON", "must be json or pretty"),
        ("SQLITE_SYNCHRONOUS", "off", "must be full or normal"),
        (
            "ADMIN_PASSWORD",
            "eleven-char",
            "must be 12 to 128 characters",
        ),
        (
            "HEADER_READ_TIMEOUT_SECS",
            "61",
            "must be a number of seconds from 1 to 60",
        ),
        ("MAX_CONNECTIONS", "0", "must be a number from 1 to 1000000"),
        (
            "PUBLIC_HOST",
            "https://api.example.com/",
            "must be a host name, optionally with :port, such as api.example.com",
        ),
        (
            "PUBLIC_HOST",
            "user@api.example.com",
            "must be a host name, optionally with :port, such as api.example.com",
        ),
        (
            "CORS_ORIGINS",
            "app.example.com",
            "must be comma-separated origins, such as https://app.example.com",
        ),
        (
            "METRICS_ADDR",
            "9100",
            "must be an address with a port, such as 127.0.0.1:9100",
        ),
        (
            "METRICS_ADDR",
            "localhost:9100",
            "must be an address with a port, such as 127.0.0.1:9100",
        ),
        (
            "METRICS_ADDR",
            "127.0.0.1:0",
            "must be an address with a port, such as 127.0.0.1:9100",
        ),
        (
            "METRICS_ADDR",
            "127.0.0.1:8000",
            "must differ from HOST:PORT: metrics have a listener of their own",
        ),
    ] {
        let err = config(&[(var, value)]).expect_err(&format!("{var}={value} should be refused"));
        assert_eq!(
            (err.var, err.problem.as_str()),
            (var, problem),
            "{var}={value}"
        );
    }
    for (given, missing) in [
        ("TLS_CERT_PATH", "TLS_KEY_PATH"),
        ("TLS_KEY_PATH", "TLS_CERT_PATH"),
    ] {
        let err = config(&[(given, "/x.pem")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{missing}: is required when {given} is set")
        );
    }
    let production = |extra: &[(&'static str, &'static str)]| {
        let mut vars = vec![("APP_ENV", "production")];
        vars.extend_from_slice(extra);
        config(&vars).unwrap_err().to_string()
    };
    assert_eq!(production(&[]), "DATABASE_URL: is required in production");
    assert_eq!(
        production(&[("DATABASE_URL", "sqlite://x.db")]),
        "SECRET_KEY: is required in production"
    );
    assert_eq!(
        production(&[
            ("DATABASE_URL", "sqlite://x.db"),
            (
                "SECRET_KEY",
                "CHANGE-ME-TO-A-RANDOM-STRING-OF-AT-LEAST-32-BYTES"
            )
        ]),
        "SECRET_KEY: is a published placeholder; generate a random key"
    );
}

#[test]
fn a_published_secret_key_is_refused_in_development_too() {
    for published in [
        "change-me-to-a-random-string-of-at-least-32-bytes",
        "bench-secret-key-bench-secret-key-0123456789",
        "test-secret-key-that-is-long-enough-0123456789",
        " Change-Me-To-A-Random-String-Of-At-Least-32-Bytes ",
    ] {
        for app_env in ["development", "production"] {
            let err = config(&[
                ("APP_ENV", app_env),
                ("DATABASE_URL", "sqlite://x.db"),
                ("SECRET_KEY", published),
                ("TLS_TERMINATED_UPSTREAM", "true"),
            ])
            .expect_err(&format!("{published:?} is refused in {app_env}"));
            assert_eq!(
                err.to_string(),
                "SECRET_KEY: is a published placeholder; generate a random key",
                "{published:?} in {app_env}"
            );
        }
    }
}

#[test]
fn an_admin_password_shorter_than_any_password_may_be_stops_start_up() {
    for (password, accepted) in [
        ("short", false),
        ("eleven-char", false),
        ("twelve-chars", true),
        (&"p".repeat(129) as &str, false),
    ] {
        let result = config(&[("ADMIN_PASSWORD", password)]);
        match (result, accepted) {
            (Ok(c), true) => assert_eq!(
                c.admin_password.as_ref().map(Secret::expose),
                Some(password)
            ),
            (Err(err), false) => {
                assert_eq!(err.var, "ADMIN_PASSWORD", "{password:?}");
                assert!(!err.to_string().contains(password), "{err}");
            }
            (result, _) => panic!("{password:?}: {result:?}"),
        }
    }
}
