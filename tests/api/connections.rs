//! Slow and idle clients against the real binary: a connection that sends nothing, trickles
//! its headers or idles between requests is closed at `HEADER_READ_TIMEOUT_SECS`, and
//! connections beyond `MAX_CONNECTIONS` wait for a free slot.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::process::{free_port, signal, start, wait_for_exit, wait_until_healthy};
use crate::raw_http::{connect, RawRequest, RawResponse};

/// The short timeout the tests run the server with.
const TIMEOUT_SECS: u64 = 2;

/// Reads until the server closes the connection (or 10 s pass); how long that took, and what
/// arrived.
fn until_closed(stream: &mut TcpStream, since: Instant) -> (Duration, RawResponse) {
    let response = RawResponse::read_what_arrives(stream);
    (since.elapsed(), response)
}

fn assert_cut_at_the_timeout(what: &str, elapsed: Duration) {
    let timeout = Duration::from_secs(TIMEOUT_SECS);
    assert!(
        elapsed >= timeout - Duration::from_millis(300) && elapsed < timeout * 3,
        "{what}: closed after {elapsed:?}, expected about {timeout:?}"
    );
}

#[test]
fn slow_and_idle_connections_are_closed_at_the_header_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let timeout = TIMEOUT_SECS.to_string();
    let (mut server, _console) = start(dir.path(), port, &[("HEADER_READ_TIMEOUT_SECS", &timeout)]);
    wait_until_healthy(port);

    // Sends nothing at all; sends the first bytes of the HTTP/2 preface and stops.
    for (what, sent) in [("nothing sent", ""), ("half an HTTP/2 preface", "PRI * HT")] {
        let mut stream = connect(port).unwrap();
        let opened = Instant::now();
        stream.write_all(sent.as_bytes()).unwrap();
        let (elapsed, response) = until_closed(&mut stream, opened);
        assert_cut_at_the_timeout(what, elapsed);
        assert_eq!(response.raw, "", "{what}");
    }

    // Trickles a header byte every 100 ms, for longer than the timeout.
    let mut stream = connect(port).unwrap();
    let opened = Instant::now();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    let mut trickle = stream.try_clone().unwrap();
    let trickler = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(12);
        while Instant::now() < deadline && trickle.write_all(b"x").is_ok() {
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let (elapsed, _) = until_closed(&mut stream, opened);
    assert_cut_at_the_timeout("trickled headers", elapsed);
    drop(stream);
    trickler.join().unwrap();

    // A keep-alive connection is answered, then closed once it idles for the timeout.
    let mut stream = connect(port).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).unwrap();
    let answered = Instant::now();
    assert_eq!(&first, b"HTTP/1.1 200");
    let (elapsed, _) = until_closed(&mut stream, answered);
    assert_cut_at_the_timeout("idle keep-alive", elapsed);

    // The server is still there for everyone else.
    assert_eq!(RawRequest::get("/health").send(port).status, 200);
    signal(&server, "TERM");
    assert!(wait_for_exit(&mut server).success());
}

#[test]
fn connections_beyond_max_connections_wait_until_one_closes() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut server, _console) = start(
        dir.path(),
        port,
        &[("MAX_CONNECTIONS", "2"), ("HEADER_READ_TIMEOUT_SECS", "10")],
    );
    wait_until_healthy(port);

    // Two connections take both slots, each in the middle of a request head.
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = connect(port).unwrap();
            stream.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    // A third gets no answer while they are held...
    let mut third = connect(port).unwrap();
    third
        .write_all(&RawRequest::get("/health").to_bytes())
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut byte = [0u8; 1];
    let waited = third.read(&mut byte);
    assert!(
        waited.is_err(),
        "the third connection is not served while two are held: {waited:?}"
    );

    // ...and is served as soon as one of them finishes and closes.
    held[0]
        .write_all(b"Host: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let finished = RawResponse::read_what_arrives(&mut held[0]);
    assert_eq!(finished.status, 200, "{}", finished.raw);
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let served = RawResponse::read_what_arrives(&mut third);
    assert_eq!(served.status, 200, "{}", served.raw);

    drop(held);
    signal(&server, "TERM");
    assert!(wait_for_exit(&mut server).success());
}
