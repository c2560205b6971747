//! Build script. For the test suite: `TEST_MYSQL_URL` set (non-empty) at build time turns
//! on `cfg(mysql_tests)`; without it every MySQL test is compiled as `#[ignore]`d, so a run
//! without a server reports those tests as ignored instead of passing them unrun. The same for
//! Redis: `TEST_REDIS_URL` turns on `cfg(redis_tests)` (the shared-limit tests). For the
//! migrations: a changed `migrations/` folder rebuilds the crate (see below).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(mysql_tests)");
    println!("cargo::rerun-if-env-changed=TEST_MYSQL_URL");
    println!("cargo::rustc-check-cfg=cfg(redis_tests)");
    println!("cargo::rerun-if-env-changed=TEST_REDIS_URL");
    // `sqlx::migrate!` embeds the migration files at compile time; without this, a new
    // migration file would not be picked up until something else made the crate rebuild.
    println!("cargo::rerun-if-changed=migrations");
    if std::env::var_os("TEST_MYSQL_URL").is_some_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=mysql_tests");
    }
    if std::env::var_os("TEST_REDIS_URL").is_some_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=redis_tests");
    }
}
