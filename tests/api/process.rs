//! The real binary as a child process: start it on a port with a clean environment, wait for
//! it to be healthy, log in over raw HTTP, signal it and wait for it to exit.
//!
//! Self-contained but for `crate::raw_http`: `bench/login_flood.rs` includes this file (and
//! that one) with `#[path]`.

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::raw_http::RawRequest;

const BINARY: &str = env!("CARGO_BIN_EXE_sellerdesk");

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary in `dir` with a clean environment plus `vars`.
pub fn command(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("RUST_LOG", "info");
    for (name, value) in vars {
        command.env(name, value);
    }
    command
}

/// Runs `command` to its end and returns what it printed, as `Command::output` does; a run
/// still going after `limit` is killed and fails the test. For runs that must stop by
/// themselves (a refused start-up, a CLI command): a regression then fails at once instead of
/// serving forever.
pub fn output_within(mut command: Command, limit: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}, when it should have stopped by itself: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A started server, killed on drop if it is still running: a test that fails between starting
/// and stopping it leaves no server behind. Derefs to its `Child`.
pub struct Running(Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts the server; its console output arrives line by line on the receiver.
pub fn start(
    dir: &Path,
    port: u16,
    vars: &[(&str, &str)],
) -> (Running, std::sync::mpsc::Receiver<String>) {
    let port = port.to_string();
    let mut all = vec![("PORT", port.as_str())];
    all.extend_from_slice(vars);
    let mut child = command(dir, &[], &all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
    }
    (Running(child), rx)
}

/// Logs in with the password grant over raw HTTP and returns the access token.
pub fn login(port: u16, username: &str, password: &str) -> String {
    let form = format!("grant_type=password&username={username}&password={password}");
    let response = RawRequest::post("/api/v1/auth/token")
        .form(&form)
        .send(port);
    response.json()["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("login failed: {}", response.raw))
        .to_owned()
}

/// Waits (at most 20 s) until `GET /health` answers 200.
pub fn wait_until_healthy(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !RawRequest::get("/health")
        .try_send(port)
        .is_ok_and(|r| r.status == 200)
    {
        assert!(Instant::now() < deadline, "the server became healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

pub fn wait_for_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the server exited after the signal"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
