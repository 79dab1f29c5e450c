//! HTTP/1.1 as much as API clients use (RFC 9112): keep-alive, Content-Length or chunked
//! request bodies, `Expect: 100-continue`, Content-Length responses and chunked streams.

use std::io::{self, BufRead, BufReader, Read, Write};

/// Request bodies above this are refused, as kube-apiserver refuses bodies over 3 MiB
/// (`MaxRequestBodyBytes`).
const MAX_BODY: usize = 3 * 1024 * 1024;
const MAX_HEAD: usize = 64 * 1024;

/// One parsed request.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    /// Path, percent-decoded.
    pub path: String,
    pub query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub keep_alive: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The last value of a query parameter (unknown ones are simply never asked for).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `true`, `1` (and any other non-false value Go's `strconv.ParseBool` accepts as true).
    pub fn flag(&self, name: &str) -> bool {
        matches!(
            self.param(name),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True")
        )
    }

    /// The media type of the body, without parameters.
    pub fn content_type(&self) -> String {
        self.header("content-type")
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }
}

/// Why no request could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed the connection between requests.
    Closed,
    /// Malformed: answer 400 (or 413) and close.
    Bad(u16, String),
    /// The connection failed (reset, or cut by the server).
    Io,
}

impl From<io::Error> for ReadError {
    fn from(_: io::Error) -> Self {
        ReadError::Io
    }
}

fn read_line(r: &mut impl BufRead, budget: &mut usize) -> Result<Vec<u8>, ReadError> {
    let mut line = Vec::new();
    let n = r
        .by_ref()
        .take(*budget as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if n > *budget {
        return Err(ReadError::Bad(431, "request header too large".into()));
    }
    *budget -= n;
    while line.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
        line.pop();
    }
    if n == 0 {
        return Err(ReadError::Closed);
    }
    Ok(line)
}

/// Read one request; a client that sends `Expect: 100-continue` is told to go on.
pub(crate) fn read_request<S: Read + Write>(r: &mut BufReader<S>) -> Result<Request, ReadError> {
    let mut budget = MAX_HEAD;
    let mut first = read_line(r, &mut budget)?;
    // RFC 9112 2.2: ignore at least one empty line before the request line.
    while first.is_empty() {
        first = read_line(r, &mut budget)?;
    }
    let first = String::from_utf8_lossy(&first).into_owned();
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Bad(
            400,
            format!("malformed request line {first:?}"),
        ));
    };
    let mut headers = Vec::new();
    loop {
        let line = match read_line(r, &mut budget) {
            Err(ReadError::Closed) => return Err(ReadError::Bad(400, "truncated header".into())),
            other => other?,
        };
        if line.is_empty() {
            break;
        }
        let line = String::from_utf8_lossy(&line).into_owned();
        let Some((k, v)) = line.split_once(':') else {
            return Err(ReadError::Bad(400, format!("malformed header {line:?}")));
        };
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let (path, query) = split_target(target);
    let mut req = Request {
        method: method.to_string(),
        target: target.to_string(),
        path,
        query,
        headers,
        body: Vec::new(),
        keep_alive: true,
    };
    let conn = req.header("connection").unwrap_or("").to_ascii_lowercase();
    req.keep_alive = match version {
        "HTTP/1.1" => !conn.contains("close"),
        "HTTP/1.0" => conn.contains("keep-alive"),
        _ => {
            return Err(ReadError::Bad(
                505,
                format!("unsupported version {version:?}"),
            ))
        }
    };
    if req
        .header("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        r.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        r.get_mut().flush()?;
    }
    let chunked = req
        .header("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    if chunked {
        req.body = read_chunked(r)?;
    } else if let Some(len) = req.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| ReadError::Bad(400, format!("bad Content-Length {len:?}")))?;
        if len > MAX_BODY {
            return Err(ReadError::Bad(413, "request entity too large".into()));
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        req.body = body;
    }
    Ok(req)
}

fn read_chunked(r: &mut impl BufRead) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let mut budget = 1024;
        let line = read_line(r, &mut budget)?;
        let line = String::from_utf8_lossy(&line);
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| ReadError::Bad(400, format!("bad chunk size {size:?}")))?;
        if size == 0 {
            // Trailers, up to the empty line.
            let mut budget = MAX_HEAD;
            while !read_line(r, &mut budget)?.is_empty() {}
            return Ok(body);
        }
        if body.len() + size > MAX_BODY {
            return Err(ReadError::Bad(413, "request entity too large".into()));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
    }
}

fn split_target(target: &str) -> (String, Vec<(String, String)>) {
    let (path, q) = target.split_once('?').unwrap_or((target, ""));
    let query = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k, true), decode(v, true))
        })
        .collect();
    (decode(path, false), query)
}

/// Percent-decoding (and `+` as space in a query, as Go's `url.ParseQuery` does).
fn decode(s: &str, plus: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

pub(crate) fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        410 => "Gone",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}

/// Write a whole response with a Content-Length.
pub(crate) fn write_response(
    w: &mut impl Write,
    code: u16,
    content_type: &str,
    extra: &[(&str, String)],
    body: &[u8],
    keep_alive: bool,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-cache, private\r\n",
        reason_phrase(code),
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut all = head.into_bytes();
    all.extend_from_slice(body);
    w.write_all(&all)?;
    w.flush()
}

/// Start a chunked 200 response (a watch stream).
pub(crate) fn write_stream_head(w: &mut impl Write) -> io::Result<()> {
    w.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
          Cache-Control: no-cache, private\r\n\r\n",
    )?;
    w.flush()
}

pub(crate) fn write_chunk(w: &mut impl Write, data: &[u8]) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let mut all = format!("{:x}\r\n", data.len()).into_bytes();
    all.extend_from_slice(data);
    all.extend_from_slice(b"\r\n");
    w.write_all(&all)?;
    w.flush()
}

/// The last chunk: the stream ends, the connection stays usable.
pub(crate) fn end_stream(w: &mut impl Write) -> io::Result<()> {
    w.write_all(b"0\r\n\r\n")?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_decoded_and_empty_pairs_ignored() {
        let (p, q) = split_target(
            "/apis/x?&watch=true&fieldSelector=spec.signerName%3Dkubernetes.io%2Fkubelet-serving&a=b+c",
        );
        assert_eq!(p, "/apis/x");
        assert_eq!(q[0], ("watch".into(), "true".into()));
        assert_eq!(
            q[1].1,
            "spec.signerName=kubernetes.io/kubelet-serving".to_string()
        );
        assert_eq!(q[2].1, "b c");
    }

    #[test]
    fn chunked_body_and_keep_alive() {
        let raw = b"PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nGET /y HTTP/1.0\r\n\r\n";
        let mut r = std::io::BufReader::new(std::io::Cursor::new(raw.to_vec()));
        let a = read_request(&mut r).unwrap();
        assert_eq!(a.body, b"abcde");
        assert!(a.keep_alive);
        let b = read_request(&mut r).unwrap();
        assert_eq!(b.path, "/y");
        assert!(!b.keep_alive);
        assert!(matches!(read_request(&mut r), Err(ReadError::Closed)));
    }
}
