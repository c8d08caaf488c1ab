//! A real HTTP/1.1 server on 127.0.0.1 that records every connection and
//! request, for the upload tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the whole body arrived (false when the client gave up).
    pub complete: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Answers for the first requests, in order; 200 afterwards.
    pub statuses: Vec<u16>,
    /// Pause between reading the headers and the body (keeps an upload in
    /// flight).
    pub body_delay: Duration,
}

pub struct LoopbackServer {
    pub url: String,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl LoopbackServer {
    pub fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/v1/samples", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let statuses = Arc::new(Mutex::new(behaviour.statuses.clone()));
        {
            let (connections, requests, stop) =
                (connections.clone(), requests.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            connections.fetch_add(1, Ordering::SeqCst);
                            let requests = requests.clone();
                            let statuses = statuses.clone();
                            let delay = behaviour.body_delay;
                            std::thread::spawn(move || serve(stream, requests, statuses, delay));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        Self {
            url,
            connections,
            requests,
            stop,
        }
    }

    /// TCP connections accepted so far (made or not into requests).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    pub fn complete_requests(&self) -> Vec<Request> {
        self.requests().into_iter().filter(|r| r.complete).collect()
    }

    /// Waits until `n` complete requests arrived (panics after `timeout`).
    pub fn wait_for_complete(&self, n: usize, timeout: Duration) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        loop {
            let done = self.complete_requests();
            if done.len() >= n {
                return done;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} uploads arrived within {timeout:?}",
                done.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(
    stream: TcpStream,
    requests: Arc<Mutex<Vec<Request>>>,
    statuses: Arc<Mutex<Vec<u16>>>,
    body_delay: Duration,
) {
    stream.set_nonblocking(false).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let Some(head) = super::file_server::read_head(&mut reader) else {
        return;
    };
    let request = Request {
        method: head.method,
        path: head.path,
        headers: head.headers,
        ..Default::default()
    };
    let index = {
        let mut all = requests.lock().unwrap();
        all.push(request.clone());
        all.len() - 1
    };
    std::thread::sleep(body_delay);
    let body = if let Some(length) = request.header("content-length") {
        let mut body = vec![0; length.parse().unwrap_or(0)];
        reader.read_exact(&mut body).ok().map(|_| body)
    } else if request.header("transfer-encoding") == Some("chunked") {
        read_chunked(&mut reader)
    } else {
        Some(Vec::new())
    };
    let Some(body) = body else {
        return; // the client gave up mid-body: recorded as incomplete
    };
    {
        let mut all = requests.lock().unwrap();
        all[index].body = body;
        all[index].complete = true;
    }
    let status = {
        let mut s = statuses.lock().unwrap();
        if s.is_empty() { 200 } else { s.remove(0) }
    };
    let mut stream = stream;
    // A redirect points back at this server, at another path.
    let location = if (300..400).contains(&status) {
        let port = stream.local_addr().map(|a| a.port()).unwrap_or(0);
        format!("Location: http://127.0.0.1:{port}/elsewhere\r\n")
    } else {
        String::new()
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} Status\r\n{location}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

fn read_chunked(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).ok()?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

/// One part of a `multipart/form-data` body.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

/// Splits a multipart body by the boundary named in `content_type`.
pub fn multipart(content_type: &str, body: &[u8]) -> Vec<Part> {
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .expect("multipart content type names a boundary");
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let positions: Vec<usize> = find_all(body, delimiter.as_bytes());
    for pair in positions.windows(2) {
        let chunk = &body[pair[0] + delimiter.len()..pair[1]];
        let chunk = chunk.strip_prefix(b"\r\n").unwrap_or(chunk);
        let chunk = chunk.strip_suffix(b"\r\n").unwrap_or(chunk);
        let split = find_all(chunk, b"\r\n\r\n")[0];
        let head = std::str::from_utf8(&chunk[..split]).unwrap();
        let bytes = chunk[split + 4..].to_vec();
        let mut part = Part {
            name: String::new(),
            filename: None,
            content_type: None,
            bytes,
        };
        for line in head.split("\r\n") {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("content-disposition:") {
                part.name = quoted(line, "name=").unwrap_or_default();
                part.filename = quoted(line, "filename=");
            } else if lower.starts_with("content-type:") {
                part.content_type = Some(line["content-type:".len()..].trim().to_string());
            }
        }
        parts.push(part);
    }
    parts
}

fn quoted(line: &str, key: &str) -> Option<String> {
    let at = line
        .match_indices(key)
        .find(|(i, _)| *i == 0 || !line.as_bytes()[i - 1].is_ascii_alphanumeric())?
        .0;
    let rest = &line[at + key.len()..];
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}
