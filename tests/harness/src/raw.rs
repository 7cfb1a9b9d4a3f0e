//! Raw bytes on a socket, for what a well-formed client cannot send: malformed or cut-off
//! requests, and pipelines. Everything else goes through [`crate::http`].

use crate::Resp;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Writes raw bytes and reads the response until the server closes (Connection: close).
pub fn send_raw(addr: SocketAddr, raw: &[u8]) -> Resp {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect to suaicloudapp");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(raw).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let elapsed = started.elapsed();
    parse(&buf, elapsed)
}

/// A response read to the server's close: the status line, the headers and what followed.
pub fn parse(buf: &[u8], elapsed: Duration) -> Resp {
    let text = String::from_utf8_lossy(buf).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response: {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_string(),
        elapsed,
    }
}

/// A keep-alive connection for bytes no client sends: a head cut off half-way after a
/// well-formed request on the same socket (slowloris), and how long the server takes to close.
pub struct Conn {
    r: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Conn {
            r: BufReader::new(s),
        }
    }

    pub fn send(&mut self, raw: &[u8]) -> std::io::Result<()> {
        self.r.get_mut().write_all(raw)
    }

    /// GET over keep-alive: status and body, or the error (closed, reset).
    pub fn get(&mut self, path: &str) -> std::io::Result<(u16, String)> {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())?;
        self.response()
    }

    pub fn response(&mut self) -> std::io::Result<(u16, String)> {
        let eof = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed");
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            return Err(eof());
        }
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(eof)?;
        let mut length = 0;
        loop {
            line.clear();
            if self.r.read_line(&mut line)? == 0 {
                return Err(eof());
            }
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        self.r.read_exact(&mut body)?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Waits until the server closes the connection; how long that took.
    pub fn time_to_close(&mut self, limit: Duration) -> Duration {
        let started = Instant::now();
        self.r.get_mut().set_read_timeout(Some(limit)).unwrap();
        let mut buf = [0u8; 512];
        loop {
            match self.r.read(&mut buf) {
                Ok(0) => return started.elapsed(),
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return started.elapsed()
                }
                Err(e) => panic!("not closed within {limit:?}: {e}"),
            }
        }
    }
}
