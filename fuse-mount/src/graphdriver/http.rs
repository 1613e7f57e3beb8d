//! The HTTP/1.1 of the plugin API, server side, with std only: a strict request parser
//! (request line, headers, a body framed by `Content-Length` or chunked transfer coding) and
//! the replies the driver sends (a JSON document, or a chunked tar stream).
//!
//! Invariants:
//! - every quantity the client controls is bounded before it is used: the head (request line
//!   and headers) is at most `HEAD_BYTES_MAX` bytes and `HEADERS_MAX` lines, a chunk size line
//!   at most 16 hex digits, the trailers share the head's bound;
//! - the body reader never reads past the end of its own body, so the next request of a
//!   kept-alive connection starts at its first byte; `Body::is_done` says whether the body was
//!   read to its end (if not, the connection cannot carry another request);
//! - what the parser does not accept is refused, never guessed: bare LF line ends, folded
//!   header lines, a space before a header's colon, duplicate framing headers, both
//!   `Content-Length` and `Transfer-Encoding`, transfer codings other than `chunked`.

use std::io::{self, BufRead, Read, Write};

/// The most bytes of a request head (request line and headers, line ends included), and of
/// the trailers of a chunked body.
pub const HEAD_BYTES_MAX: usize = 16 * 1024;
/// The most header lines of a request (and trailer lines of a chunked body).
pub const HEADERS_MAX: usize = 64;
/// The largest chunk of a chunked reply.
const REPLY_CHUNK_BYTES: usize = 64 * 1024;
/// The media type of plugin API replies (dockerd does not check it).
const JSON_TYPE: &str = "application/vnd.docker.plugins.v1+json";

/// A request that cannot be served, with the status and message of its reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    pub status: u16,
    pub message: String,
}

impl HttpError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        HttpError {
            status,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        HttpError::new(400, message)
    }
}

/// How a request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length` bytes (0 when the request has neither framing header).
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// A request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The target's path, e.g. `/GraphDriver.ApplyDiff`.
    pub path: String,
    /// The target's query, decoded (`a=1&b=%2F` is `[("a","1"),("b","/")]`).
    pub query: Vec<(String, String)>,
    /// HTTP/1.1 without `Connection: close`.
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for an interim reply before it sends the body.
    pub expect_continue: bool,
    pub framing: Framing,
}

impl Request {
    /// The decoded value of query parameter `key`, if given.
    pub fn query_value(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one line ending in CRLF (returned without it), charging its bytes to `budget`.
/// `Ok(None)` when the stream ends before any byte of the line.
fn read_line(reader: &mut impl BufRead, budget: &mut usize) -> Result<Option<Vec<u8>>, HttpError> {
    let mut line = Vec::new();
    loop {
        let available = reader
            .fill_buf()
            .map_err(|e| HttpError::bad(format!("reading the request failed: {e}")))?;
        if available.is_empty() {
            if line.is_empty() {
                return Ok(None);
            }
            return Err(HttpError::bad(
                "the connection ended inside the request head (a truncated request)",
            ));
        }
        let (taken, found) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if taken > *budget {
            return Err(HttpError::new(
                431,
                format!("the request head is over {HEAD_BYTES_MAX} bytes"),
            ));
        }
        *budget -= taken;
        line.extend_from_slice(available.get(..taken).unwrap_or_default());
        reader.consume(taken);
        if found {
            break;
        }
    }
    line.pop();
    if line.pop() != Some(b'\r') {
        return Err(HttpError::bad(
            "a line of the request head ends in LF without CR",
        ));
    }
    Ok(Some(line))
}

/// RFC 9110 `tchar`: what a method or a header name is made of.
fn is_token(text: &[u8]) -> bool {
    !text.is_empty()
        && text
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether the comma-separated header `value` holds `token` (case-insensitive).
fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Reads the head of the next request; `Ok(None)` when the connection ends between requests.
pub fn read_head(reader: &mut impl BufRead) -> Result<Option<Request>, HttpError> {
    let mut budget = HEAD_BYTES_MAX;
    let Some(line) = read_line(reader, &mut budget)? else {
        return Ok(None);
    };
    let (method, target, http_1_1) = parse_request_line(&line)?;
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_string(), parse_query(query)?),
        None => (target, Vec::new()),
    };
    let mut request = Request {
        method,
        path,
        query,
        keep_alive: http_1_1,
        expect_continue: false,
        framing: Framing::Length(0),
    };
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut lines = 0;
    loop {
        let line = read_line(reader, &mut budget)?
            .ok_or_else(|| HttpError::bad("the connection ended inside the request headers"))?;
        if line.is_empty() {
            break;
        }
        lines += 1;
        if lines > HEADERS_MAX {
            return Err(HttpError::new(
                431,
                format!("the request has over {HEADERS_MAX} header lines"),
            ));
        }
        let (name, value) = parse_header(&line)?;
        match name.as_str() {
            "content-length" if length.is_some() => {
                return Err(HttpError::bad("the request has two Content-Length headers"))
            }
            "content-length" => length = Some(parse_length(&value)?),
            "transfer-encoding" if chunked => {
                return Err(HttpError::bad(
                    "the request has two Transfer-Encoding headers",
                ))
            }
            "transfer-encoding" if !value.eq_ignore_ascii_case("chunked") => {
                return Err(HttpError::new(
                    501,
                    format!("transfer coding {value:?} is not supported (only chunked)"),
                ))
            }
            "transfer-encoding" => chunked = true,
            "connection" if has_token(&value, "close") => request.keep_alive = false,
            "expect" if !value.eq_ignore_ascii_case("100-continue") => {
                return Err(HttpError::new(
                    417,
                    format!("expectation {value:?} is not supported"),
                ))
            }
            "expect" => request.expect_continue = true,
            _ => {}
        }
    }
    request.framing = match (length, chunked) {
        (Some(_), true) => {
            return Err(HttpError::bad(
                "the request has both Content-Length and Transfer-Encoding",
            ))
        }
        (_, true) => Framing::Chunked,
        (length, false) => Framing::Length(length.unwrap_or(0)),
    };
    Ok(Some(request))
}

/// `METHOD SP TARGET SP HTTP/1.x`: the method, the target, and whether it is HTTP/1.1.
fn parse_request_line(line: &[u8]) -> Result<(String, String, bool), HttpError> {
    let shown = String::from_utf8_lossy(line.get(..line.len().min(80)).unwrap_or_default());
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return Err(HttpError::bad(format!(
            "malformed request line {shown:?} (expected `METHOD /path HTTP/1.1`)"
        )));
    };
    if !is_token(method) {
        return Err(HttpError::bad(format!("malformed method in {shown:?}")));
    }
    if target.first() != Some(&b'/') || !target.iter().all(|&b| b.is_ascii_graphic()) {
        return Err(HttpError::bad(format!(
            "malformed request target in {shown:?} (expected a path such as /Plugin.Activate)"
        )));
    }
    let http_1_1 = match *version {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        _ => {
            return Err(HttpError::new(
                505,
                format!("unsupported protocol version in {shown:?} (HTTP/1.1 or 1.0)"),
            ))
        }
    };
    // Tokens and visible ASCII are UTF-8.
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Ok((text(method), text(target), http_1_1))
}

/// `name: value` with the name lowercased and the value trimmed of spaces and tabs.
fn parse_header(line: &[u8]) -> Result<(String, String), HttpError> {
    let shown = String::from_utf8_lossy(line.get(..line.len().min(80)).unwrap_or_default());
    if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
        return Err(HttpError::bad(format!(
            "folded header line {shown:?} (obsolete line folding is refused)"
        )));
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| HttpError::bad(format!("malformed header line {shown:?} (no colon)")))?;
    let (name, value) = line.split_at(colon);
    if !is_token(name) {
        return Err(HttpError::bad(format!(
            "malformed header name in {shown:?}"
        )));
    }
    let value = value.get(1..).unwrap_or_default();
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(HttpError::bad(format!(
            "a control character in the value of header {:?}",
            String::from_utf8_lossy(name)
        )));
    }
    let value = String::from_utf8_lossy(value)
        .trim_matches([' ', '\t'])
        .to_string();
    Ok((String::from_utf8_lossy(name).to_ascii_lowercase(), value))
}

fn parse_length(value: &str) -> Result<u64, HttpError> {
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HttpError::bad(format!(
            "malformed Content-Length {value:?} (expected decimal digits)"
        )));
    }
    value
        .parse()
        .map_err(|_| HttpError::bad(format!("malformed Content-Length {value:?}")))
}

/// `a=1&b=x%2Fy` as decoded pairs (`application/x-www-form-urlencoded`: `+` is a space).
fn parse_query(query: &str) -> Result<Vec<(String, String)>, HttpError> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(key)?, percent_decode(value)?))
        })
        .collect()
}

fn percent_decode(text: &str) -> Result<String, HttpError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        HttpError::bad(format!("malformed percent escape in query {text:?}"))
                    })?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map_err(|_| HttpError::bad(format!("query {text:?} does not decode to UTF-8")))
}

/// Where a body reader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    /// `left` bytes of a `Content-Length` body remain.
    Length { left: u64, total: u64 },
    /// Between chunks: a chunk size line comes next.
    ChunkStart,
    /// `left` bytes of the current chunk remain, then its CRLF.
    Chunk { left: u64 },
    /// The whole body was read.
    Done,
    /// The body was malformed or the connection broke: nothing more can be read.
    Failed,
}

/// The body of one request, read from the connection without reading past its end.
pub struct Body<'a, R> {
    reader: &'a mut R,
    state: BodyState,
}

fn broken(kind: io::ErrorKind, message: String) -> io::Error {
    io::Error::new(kind, message)
}

impl<'a, R: BufRead> Body<'a, R> {
    pub fn new(reader: &'a mut R, framing: Framing) -> Self {
        let state = match framing {
            Framing::Length(0) => BodyState::Done,
            Framing::Length(n) => BodyState::Length { left: n, total: n },
            Framing::Chunked => BodyState::ChunkStart,
        };
        Body { reader, state }
    }

    /// Whether the body was read to its end (the connection may carry another request).
    pub fn is_done(&self) -> bool {
        self.state == BodyState::Done
    }

    /// Reads and drops the rest of the body, at most `max_bytes` of it; whether it ended.
    pub fn drain(&mut self, max_bytes: u64) -> bool {
        let mut buf = vec![0u8; 64 * 1024];
        let mut drained = 0u64;
        while drained <= max_bytes {
            match self.read(&mut buf) {
                Ok(0) => return self.is_done(),
                Ok(n) => drained += n as u64,
                Err(_) => return false,
            }
        }
        false
    }

    /// Reads the body to its end into memory, refusing one over `max_bytes`.
    pub fn read_all(&mut self, max_bytes: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let limit = u64::try_from(max_bytes)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        self.take(limit).read_to_end(&mut out)?;
        if out.len() > max_bytes {
            return Err(broken(
                io::ErrorKind::InvalidData,
                format!("the request body is over {max_bytes} bytes"),
            ));
        }
        Ok(out)
    }

    /// Reads the size line of the next chunk (and the trailers after the last one).
    fn next_chunk(&mut self) -> io::Result<()> {
        let mut budget = HEAD_BYTES_MAX;
        let line = read_line(&mut *self.reader, &mut budget)
            .map_err(|e| broken(io::ErrorKind::InvalidData, e.message))?
            .ok_or_else(|| {
                broken(
                    io::ErrorKind::UnexpectedEof,
                    "the request body ends before its last chunk (a truncated chunked body)"
                        .to_string(),
                )
            })?;
        let size = parse_chunk_size(&line)?;
        if size > 0 {
            self.state = BodyState::Chunk { left: size };
            return Ok(());
        }
        // The last chunk: trailers until an empty line, bounded like a head.
        for _ in 0..=HEADERS_MAX {
            let trailer = read_line(&mut *self.reader, &mut budget)
                .map_err(|e| broken(io::ErrorKind::InvalidData, e.message))?
                .ok_or_else(|| {
                    broken(
                        io::ErrorKind::UnexpectedEof,
                        "the request body ends inside its trailers".to_string(),
                    )
                })?;
            if trailer.is_empty() {
                self.state = BodyState::Done;
                return Ok(());
            }
        }
        Err(broken(
            io::ErrorKind::InvalidData,
            format!("the chunked body has over {HEADERS_MAX} trailer lines"),
        ))
    }

    /// Reads the CRLF that ends a chunk's data.
    fn chunk_end(&mut self) -> io::Result<()> {
        let mut crlf = [0u8; 2];
        self.reader.read_exact(&mut crlf).map_err(|e| {
            broken(
                io::ErrorKind::UnexpectedEof,
                format!("the request body ends inside a chunk ({e})"),
            )
        })?;
        if crlf != *b"\r\n" {
            return Err(broken(
                io::ErrorKind::InvalidData,
                "a chunk of the request body is longer than its size line says".to_string(),
            ));
        }
        self.state = BodyState::ChunkStart;
        Ok(())
    }

    fn read_step(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.state {
                BodyState::Done => return Ok(0),
                BodyState::Failed => {
                    return Err(broken(
                        io::ErrorKind::InvalidData,
                        "the request body is unreadable after an earlier error".to_string(),
                    ))
                }
                BodyState::ChunkStart => self.next_chunk()?,
                BodyState::Chunk { left: 0 } => self.chunk_end()?,
                BodyState::Chunk { left } => {
                    let n = self.read_data(buf, left).map_err(|e| {
                        if e.kind() != io::ErrorKind::UnexpectedEof {
                            return e;
                        }
                        broken(
                            io::ErrorKind::UnexpectedEof,
                            "the request body ends inside a chunk (a truncated chunked body)"
                                .to_string(),
                        )
                    })?;
                    self.state = BodyState::Chunk {
                        left: left - n as u64,
                    };
                    return Ok(n);
                }
                BodyState::Length { left, total } => {
                    let n = self.read_data(buf, left).map_err(|e| {
                        if e.kind() != io::ErrorKind::UnexpectedEof {
                            return e;
                        }
                        broken(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "the request body ends after {} of its {total} bytes (a \
                                 truncated body)",
                                total - left
                            ),
                        )
                    })?;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        BodyState::Done
                    } else {
                        BodyState::Length { left, total }
                    };
                    return Ok(n);
                }
            }
        }
    }

    /// Reads at most `left` bytes of data; an end of the stream is an error.
    fn read_data(&mut self, buf: &mut [u8], left: u64) -> io::Result<usize> {
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let Some(target) = buf.get_mut(..want) else {
            return Ok(0);
        };
        let n = self.reader.read(target)?;
        if n == 0 && want > 0 {
            return Err(broken(
                io::ErrorKind::UnexpectedEof,
                "the request body ends early (a truncated body)".to_string(),
            ));
        }
        Ok(n)
    }
}

impl<R: BufRead> Read for Body<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.read_step(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.state = BodyState::Failed;
                Err(e)
            }
        }
    }
}

/// A chunk size line: hex digits, then optional extensions after `;` (ignored).
fn parse_chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = std::str::from_utf8(digits)
        .unwrap_or("")
        .trim_matches([' ', '\t']);
    if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(broken(
            io::ErrorKind::InvalidData,
            format!(
                "malformed chunk size line {:?} in the request body",
                String::from_utf8_lossy(line.get(..line.len().min(40)).unwrap_or_default())
            ),
        ));
    }
    u64::from_str_radix(digits, 16).map_err(|_| {
        broken(
            io::ErrorKind::InvalidData,
            "chunk size overflows".to_string(),
        )
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Internal Server Error",
    }
}

fn status_line(status: u16, keep_alive: bool) -> String {
    let connection = if keep_alive {
        ""
    } else {
        "Connection: close\r\n"
    };
    format!("HTTP/1.1 {status} {}\r\n{connection}", reason(status))
}

/// Tells a client that sent `Expect: 100-continue` to send its body.
pub fn write_continue(out: &mut impl Write) -> io::Result<()> {
    out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    out.flush()
}

/// Writes a whole reply whose body is the JSON document `body`.
pub fn write_json(
    out: &mut impl Write,
    status: u16,
    body: &serde_json::Value,
    keep_alive: bool,
) -> io::Result<()> {
    let body = serde_json::to_vec(body).map_err(io::Error::other)?;
    let mut reply = status_line(status, keep_alive).into_bytes();
    reply.extend_from_slice(
        format!(
            "Content-Type: {JSON_TYPE}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    reply.extend_from_slice(&body);
    out.write_all(&reply)?;
    out.flush()
}

/// A 200 reply whose body is a stream of unknown length, sent in chunks. The head goes out with
/// the first chunk, so a failure before `REPLY_CHUNK_BYTES` were written can still be answered
/// with an error reply instead (`started` says which).
pub struct ChunkedReply<W: Write> {
    out: W,
    content_type: &'static str,
    keep_alive: bool,
    buffer: Vec<u8>,
    started: bool,
}

impl<W: Write> ChunkedReply<W> {
    pub fn new(out: W, content_type: &'static str, keep_alive: bool) -> Self {
        ChunkedReply {
            out,
            content_type,
            keep_alive,
            buffer: Vec::with_capacity(REPLY_CHUNK_BYTES),
            started: false,
        }
    }

    /// Whether the head and some of the body went out (an error reply is impossible then).
    pub fn started(&self) -> bool {
        self.started
    }

    /// Sends the buffered bytes as one chunk (the head first, once).
    fn send_chunk(&mut self) -> io::Result<()> {
        let buffer = std::mem::take(&mut self.buffer);
        let sent = self.send(&buffer);
        self.buffer = buffer;
        self.buffer.clear();
        sent
    }

    /// Sends `data` as one chunk (none if empty), the head first, once; `data` is written as
    /// it is, not copied.
    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        let mut prefix = Vec::with_capacity(256);
        if !self.started {
            prefix.extend_from_slice(status_line(200, self.keep_alive).as_bytes());
            prefix.extend_from_slice(
                format!(
                    "Content-Type: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
                    self.content_type
                )
                .as_bytes(),
            );
            self.started = true;
        }
        if data.is_empty() {
            return self.out.write_all(&prefix);
        }
        prefix.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        write_all_parts(&mut self.out, &[&prefix, data, b"\r\n"])
    }

    /// Ends the body: the last chunk goes out.
    pub fn finish(mut self) -> io::Result<()> {
        self.send_chunk()?;
        self.out.write_all(b"0\r\n\r\n")?;
        self.out.flush()
    }
}

/// Writes `parts` one after the other, in as few system calls as the writer allows.
fn write_all_parts(out: &mut impl Write, parts: &[&[u8]]) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = parts.iter().map(|p| io::IoSlice::new(p)).collect();
    let mut rest = slices.as_mut_slice();
    while !rest.is_empty() {
        match out.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl<W: Write> Write for ChunkedReply<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // A write of a whole chunk or more with nothing buffered goes out as it is: the tar
        // writer hands over file data in pieces of 1 MiB, which need no copy.
        if self.buffer.is_empty() && data.len() >= REPLY_CHUNK_BYTES {
            self.send(data)?;
            return Ok(data.len());
        }
        let room = REPLY_CHUNK_BYTES - self.buffer.len();
        let taken = data.len().min(room);
        self.buffer
            .extend_from_slice(data.get(..taken).unwrap_or_default());
        if self.buffer.len() == REPLY_CHUNK_BYTES {
            self.send_chunk()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &[u8]) -> Result<Option<Request>, HttpError> {
        read_head(&mut io::BufReader::new(raw))
    }

    fn body_of(raw: &[u8]) -> (io::Result<Vec<u8>>, bool, Vec<u8>) {
        let mut reader = io::BufReader::new(raw);
        let request = read_head(&mut reader).ok().flatten();
        let framing = request.map_or(Framing::Length(0), |r| r.framing);
        let mut body = Body::new(&mut reader, framing);
        let out = body.read_all(1 << 20);
        let done = body.is_done();
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
        (out, done, rest)
    }

    #[test]
    fn a_request_head_parses_with_its_query_decoded() {
        let raw = b"POST /GraphDriver.ApplyDiff?id=a%2Fb+c&parent= HTTP/1.1\r\n\
                    Host: plugin\r\nTransfer-Encoding: Chunked\r\n\r\n";
        let request = head(raw).ok().flatten();
        let Some(request) = request else {
            panic!("no request parsed");
        };
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/GraphDriver.ApplyDiff");
        assert_eq!(request.query_value("id"), Some("a/b c"));
        assert_eq!(request.query_value("parent"), Some(""));
        assert_eq!(request.framing, Framing::Chunked);
        assert!(request.keep_alive);
    }

    #[test]
    fn a_chunked_body_is_read_to_its_end_and_no_further() {
        let raw = b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
                    5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let (out, done, rest) = body_of(raw);
        assert_eq!(out.ok(), Some(b"hello world".to_vec()));
        assert!(done);
        assert_eq!(rest, b"NEXT");
    }

    #[test]
    fn a_length_body_stops_at_its_length() {
        let (out, done, rest) = body_of(b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcdef");
        assert_eq!(out.ok(), Some(b"abc".to_vec()));
        assert!(done);
        assert_eq!(rest, b"def");
    }

    #[test]
    fn truncated_and_malformed_bodies_are_errors() {
        for raw in [
            &b"POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"[..],
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello",
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n",
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
        ] {
            let (out, done, _) = body_of(raw);
            assert!(out.is_err(), "{:?}", String::from_utf8_lossy(raw));
            assert!(!done);
        }
        let (out, _, _) = body_of(b"POST /x HTTP/1.1\r\nContent-Length: 3000000\r\n\r\n");
        assert!(out.is_err());
    }

    #[test]
    fn malformed_heads_are_refused_with_a_status() {
        let cases: [(&[u8], u16); 13] = [
            (b"garbage\r\n\r\n", 400),
            (b"\x00\x01\x02 / HTTP/1.1\r\n\r\n", 400),
            (b"POST x HTTP/1.1\r\n\r\n", 400),
            (b"POST / HTTP/2.0\r\n\r\n", 505),
            (b"POST / HTTP/1.1\n\n", 400),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
                400,
            ),
            (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400),
            (b"POST /?id=%zz HTTP/1.1\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x", 400),
        ];
        for (raw, status) in cases {
            match head(raw) {
                Err(e) => assert_eq!(
                    e.status,
                    status,
                    "{:?}: {}",
                    String::from_utf8_lossy(raw),
                    e.message
                ),
                Ok(r) => panic!("{:?} parsed as {r:?}", String::from_utf8_lossy(raw)),
            }
        }
        let mut huge = b"POST / HTTP/1.1\r\n".to_vec();
        huge.extend(std::iter::repeat_n(b'a', HEAD_BYTES_MAX));
        assert_eq!(head(&huge).err().map(|e| e.status), Some(431));
        let mut many = b"POST / HTTP/1.1\r\n".to_vec();
        for i in 0..=HEADERS_MAX {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(head(&many).err().map(|e| e.status), Some(431));
        assert_eq!(head(b""), Ok(None));
    }

    #[test]
    fn connection_close_and_http_1_0_end_the_connection() {
        let close = head(b"POST / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n");
        assert_eq!(close.ok().flatten().map(|r| r.keep_alive), Some(false));
        let old = head(b"POST / HTTP/1.0\r\n\r\n");
        assert_eq!(old.ok().flatten().map(|r| r.keep_alive), Some(false));
    }

    #[test]
    fn a_chunked_reply_decodes_to_what_was_written() {
        let mut wire = Vec::new();
        let mut reply = ChunkedReply::new(&mut wire, "application/x-tar", true);
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        assert!(reply.write_all(&data[..100]).is_ok());
        assert!(!reply.started(), "a small write waits for a chunk's worth");
        assert!(reply.write_all(&data[100..]).is_ok());
        assert!(reply.started());
        // What is written goes out as it comes: at most a chunk stays behind.
        assert!(reply.out.len() >= data.len() - REPLY_CHUNK_BYTES);
        assert!(reply.finish().is_ok());
        let text = String::from_utf8_lossy(&wire);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text:.80}");
        let start = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
        let mut rest = wire.get(start..).unwrap_or_default();
        let mut decoded = Vec::new();
        let mut body = Body::new(&mut rest, Framing::Chunked);
        assert!(body.read_to_end(&mut decoded).is_ok());
        assert_eq!(decoded, data);
    }
}
