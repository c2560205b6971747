//! HTTP/1.1 by hand, for tests (and the login-flood bench) that talk to the real binary over
//! TCP: `RawRequest` renders a request (adding `Host`, `Content-Length` and
//! `Connection: close`), `RawResponse` is what came back, parsed. A test that must send bytes
//! no client would (half a body, then a pause) writes `RawRequest::to_bytes` itself.
//!
//! Self-contained on purpose: `bench/login_flood.rs` includes this file with `#[path]`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One request to send over a fresh connection.
#[derive(Debug, Clone)]
pub struct RawRequest {
    method: &'static str,
    path: String,
    host: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

impl RawRequest {
    pub fn new(method: &'static str, path: &str) -> Self {
        Self {
            method,
            path: path.to_owned(),
            host: "t".to_owned(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    pub fn post(path: &str) -> Self {
        Self::new("POST", path)
    }

    /// The `Host` header (`t` unless set).
    pub fn host(mut self, host: &str) -> Self {
        self.host = host.to_owned();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    /// `body` as `application/json`.
    pub fn json(self, body: &str) -> Self {
        self.body("application/json", body)
    }

    /// `body` as `application/x-www-form-urlencoded` (already encoded).
    pub fn form(self, body: &str) -> Self {
        self.body("application/x-www-form-urlencoded", body)
    }

    pub fn body(mut self, content_type: &str, body: &str) -> Self {
        self.headers
            .push(("Content-Type".to_owned(), content_type.to_owned()));
        self.body = Some(body.to_owned());
        self
    }

    /// The request as it goes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\n",
            self.method, self.path, self.host
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = &self.body {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("Connection: close\r\n\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(self.body.as_deref().unwrap_or_default().as_bytes());
        bytes
    }

    /// Sends the request to `127.0.0.1:port` and reads the response until the server closes.
    pub fn try_send(&self, port: u16) -> std::io::Result<RawResponse> {
        let mut stream = connect(port)?;
        stream.write_all(&self.to_bytes())?;
        RawResponse::read_from(&mut stream)
    }

    /// `try_send`, for a server that must be up: a connection error fails the test.
    pub fn send(&self, port: u16) -> RawResponse {
        self.try_send(port)
            .unwrap_or_else(|e| panic!("{} {} on port {port}: {e}", self.method, self.path))
    }
}

/// A connection to `127.0.0.1:port` whose reads give up after 10 s.
pub fn connect(port: u16) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(stream)
}

/// A response read to the end. `status` is 0 when what came back is not HTTP/1.1.
#[derive(Debug, Clone, Default)]
pub struct RawResponse {
    pub status: u16,
    /// Names as sent; `header` looks them up case-insensitively.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked), as text.
    pub text: String,
    /// Everything that came back, as text, for assertion messages.
    pub raw: String,
}

impl RawResponse {
    /// Reads until the server closes the connection (or the read times out).
    pub fn read_from(stream: &mut impl Read) -> std::io::Result<Self> {
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes)?;
        Ok(Self::parse(&bytes))
    }

    /// Like `read_from`, but whatever arrived before an error or timeout counts.
    pub fn read_what_arrives(stream: &mut impl Read) -> Self {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut chunk) {
            bytes.extend_from_slice(&chunk[..n]);
        }
        Self::parse(&bytes)
    }

    pub fn parse(bytes: &[u8]) -> Self {
        let raw = String::from_utf8_lossy(bytes).into_owned();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.strip_prefix("HTTP/1.1 "))
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.to_owned(), value.trim().to_owned()))
            .collect();
        let chunked = headers.iter().any(|(name, value)| {
            name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked")
        });
        let text = if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        };
        Self {
            status,
            headers,
            text,
            raw,
        }
    }

    /// The first value of the header `name`, any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or_default()
    }
}

/// The payload of a chunked body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = size.split(';').next().unwrap_or_default().trim();
        match usize::from_str_radix(size, 16) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.push_str(rest.get(..n).unwrap_or(rest));
                body = rest.get(n..).unwrap_or_default().trim_start_matches("\r\n");
            }
        }
    }
    out
}

#[test]
fn a_request_renders_with_host_length_and_close() {
    let request = RawRequest::post("/p").bearer("x").json("{}").to_bytes();
    assert_eq!(
        String::from_utf8(request).unwrap(),
        "POST /p HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    );
}

#[test]
fn a_chunked_response_is_parsed() {
    let response = RawResponse::parse(
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n",
    );
    assert_eq!(response.status, 429);
    assert_eq!(response.header("retry-after"), Some("7"));
    assert_eq!(response.json(), serde_json::json!({"a": 1}));
    assert_eq!(RawResponse::parse(b"\x16\x03\x01garbage").status, 0);
}
