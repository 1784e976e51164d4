//! A small blocking HTTP/1.1 client for the API: one request per connection, JSON bodies,
//! `Content-Length` or chunked responses, and Server-Sent Events read one event at a time.
//! The `eddy` command line uses it; so do the tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::error::HttpError;

/// `s` percent-encoded for a query string or a path segment (every byte but
/// `A-Z a-z 0-9 - _ . ~`).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            HttpError::io(
                format!(
                    "the server's answer ({}) is not JSON: {}",
                    self.status,
                    String::from_utf8_lossy(&self.body)
                ),
                std::io::Error::other(e),
            )
        })
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A client of one server (`host:port`).
#[derive(Debug, Clone)]
pub struct Client {
    addr: String,
    timeout: Duration,
}

fn io(context: &str, e: std::io::Error) -> HttpError {
    HttpError::io(context.to_owned(), e)
}

impl Client {
    /// A client of `addr` (`host:port`), waiting up to `timeout` for each answer.
    pub fn new(addr: impl Into<String>, timeout: Duration) -> Client {
        Client {
            addr: addr.into(),
            timeout,
        }
    }

    fn connect(&self) -> Result<TcpStream, HttpError> {
        let context = format!("cannot connect to {}", self.addr);
        let addrs = self.addr.to_socket_addrs().map_err(|e| io(&context, e))?;
        let mut last = std::io::Error::other("no address");
        for a in addrs {
            match TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
                Ok(s) => {
                    s.set_read_timeout(Some(self.timeout))
                        .map_err(|e| io(&context, e))?;
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = e,
            }
        }
        Err(io(&context, last))
    }

    fn send_head(
        &self,
        stream: &mut TcpStream,
        method: &str,
        target: &str,
        body: Option<&[u8]>,
        accept: &str,
    ) -> Result<(), HttpError> {
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: {accept}\r\n",
            self.addr
        );
        if let Some(b) = body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        head.push_str("\r\n");
        let context = format!("cannot send to {}", self.addr);
        stream
            .write_all(head.as_bytes())
            .map_err(|e| io(&context, e))?;
        if let Some(b) = body {
            stream.write_all(b).map_err(|e| io(&context, e))?;
        }
        Ok(())
    }

    /// Sends one request and reads the whole answer.
    pub fn request(
        &self,
        method: &str,
        target: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, HttpError> {
        let body = body.map(|b| b.to_string().into_bytes());
        self.request_raw(method, target, body.as_deref())
    }

    /// Sends one request with a raw body and reads the whole answer.
    pub fn request_raw(
        &self,
        method: &str,
        target: &str,
        body: Option<&[u8]>,
    ) -> Result<Response, HttpError> {
        let mut stream = self.connect()?;
        self.send_head(&mut stream, method, target, body, "application/json")?;
        let mut reader = BufReader::new(stream);
        let (status, headers) = read_head(&mut reader)?;
        let mut body = Vec::new();
        let context = format!("cannot read the answer of {}", self.addr);
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        if chunked {
            Chunked::new(reader)
                .read_to_end(&mut body)
                .map_err(|e| io(&context, e))?;
        } else if let Some(len) = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
        {
            body.resize(len, 0);
            reader.read_exact(&mut body).map_err(|e| io(&context, e))?;
        } else {
            reader.read_to_end(&mut body).map_err(|e| io(&context, e))?;
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// `GET` a Server-Sent Events stream; the status and headers are read before returning.
    pub fn events(&self, target: &str) -> Result<(Response, EventStream), HttpError> {
        let mut stream = self.connect()?;
        self.send_head(&mut stream, "GET", target, None, "text/event-stream")?;
        let mut reader = BufReader::new(stream);
        let (status, headers) = read_head(&mut reader)?;
        let head = Response {
            status,
            headers,
            body: Vec::new(),
        };
        Ok((
            head,
            EventStream {
                reader: BufReader::new(Chunked::new(reader)),
            },
        ))
    }
}

fn read_head(reader: &mut impl BufRead) -> Result<(u16, Vec<(String, String)>), HttpError> {
    let context = "cannot read an HTTP answer";
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| io(context, e))?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| {
            io(
                context,
                std::io::Error::other(format!("bad status line {line:?}")),
            )
        })?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(|e| io(context, e))?;
        let l = line.trim_end();
        if n == 0 || l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    Ok((status, headers))
}

/// Reads a chunked body as a plain byte stream.
#[derive(Debug)]
struct Chunked<R> {
    inner: R,
    left: usize,
    done: bool,
}

impl<R: BufRead> Chunked<R> {
    fn new(inner: R) -> Chunked<R> {
        Chunked {
            inner,
            left: 0,
            done: false,
        }
    }
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            self.inner.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("bad chunk size line {line:?}"),
                )
            })?;
            if size == 0 {
                self.done = true;
                return Ok(0);
            }
            self.left = size;
        }
        let n = buf.len().min(self.left);
        let got = self.inner.read(&mut buf[..n])?;
        if got == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= got;
        if self.left == 0 {
            let mut crlf = String::new();
            self.inner.read_line(&mut crlf)?;
        }
        Ok(got)
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its `event:` name (`message` when absent).
    pub event: String,
    /// Its `id:`, if any.
    pub id: Option<String>,
    /// Its `data:` lines joined by newlines.
    pub data: String,
}

/// An open Server-Sent Events stream.
#[derive(Debug)]
pub struct EventStream {
    reader: BufReader<Chunked<BufReader<TcpStream>>>,
}

impl EventStream {
    /// The next event (comments skipped); `None` when the server ends the stream.
    pub fn next_event(&mut self) -> Result<Option<Event>, HttpError> {
        let mut event = Event {
            event: "message".into(),
            id: None,
            data: String::new(),
        };
        let mut seen = false;
        let mut line = String::new();
        loop {
            line.clear();
            let n = self
                .reader
                .read_line(&mut line)
                .map_err(|e| io("cannot read the event stream", e))?;
            if n == 0 {
                return Ok(None);
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                if seen {
                    return Ok(Some(event));
                }
                continue;
            }
            if l.starts_with(':') {
                continue;
            }
            let (field, value) = l.split_once(':').unwrap_or((l, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            seen = true;
            match field {
                "event" => event.event = value.to_owned(),
                "id" => event.id = Some(value.to_owned()),
                "data" => {
                    if !event.data.is_empty() {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                }
                _ => {}
            }
        }
    }
}
