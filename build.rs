//! Build script: only for the test suite. `TEST_MYSQL_URL` set (non-empty) at build time turns
//! on `cfg(mysql_tests)`; without it every MySQL test is compiled as `#[ignore]`d, so a run
//! without a server reports those tests as ignored instead of passing them unrun.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(mysql_tests)");
    println!("cargo::rerun-if-env-changed=TEST_MYSQL_URL");
    if std::env::var_os("TEST_MYSQL_URL").is_some_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=mysql_tests");
    }
}
