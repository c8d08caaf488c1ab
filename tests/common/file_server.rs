//! A real HTTP/1.1 file server on 127.0.0.1 for the download tests: byte
//! ranges, `If-Range` against an ETag, and a fault switch that cuts a
//! response off part-way (as a dropped connection does). Every request is
//! recorded.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Served {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub if_range: Option<String>,
    pub status: u16,
}

#[derive(Clone)]
struct File {
    bytes: Arc<Vec<u8>>,
    etag: String,
}

#[derive(Default)]
struct State {
    files: HashMap<String, File>,
    /// Cut the next responses (in order) after this many body bytes.
    cut_after: Vec<u64>,
    /// Pause after each 64 KB sent (keeps a download in flight for a test).
    throttle: Duration,
    log: Vec<Served>,
}

pub struct FileServer {
    pub base: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FileServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let state = state.clone();
                            std::thread::spawn(move || serve(stream, state));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        Self { base, state, stop }
    }

    /// Serves `bytes` at `path` with the given ETag.
    pub fn put(&self, path: &str, bytes: Vec<u8>, etag: &str) {
        self.state.lock().unwrap().files.insert(
            path.to_string(),
            File {
                bytes: Arc::new(bytes),
                etag: format!("\"{etag}\""),
            },
        );
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The next response stops after `bytes` body bytes and the connection
    /// closes; several calls queue several cuts.
    pub fn cut_next_after(&self, bytes: u64) {
        self.state.lock().unwrap().cut_after.push(bytes);
    }

    pub fn throttle(&self, pause_per_64k: Duration) {
        self.state.lock().unwrap().throttle = pause_per_64k;
    }

    pub fn log(&self) -> Vec<Served> {
        self.state.lock().unwrap().log.clone()
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(stream: TcpStream, state: Arc<Mutex<State>>) {
    stream.set_nonblocking(false).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let Some(head) = read_head(&mut reader) else {
            return;
        };
        let (method, path) = (head.method, head.path);
        let headers: HashMap<String, String> = head.headers.into_iter().collect();
        let (file, cut, throttle) = {
            let mut state = state.lock().unwrap();
            let file = state.files.get(&path).cloned();
            let cut =
                (!state.cut_after.is_empty() && file.is_some()).then(|| state.cut_after.remove(0));
            (file, cut, state.throttle)
        };
        let range = headers.get("range").cloned();
        let if_range = headers.get("if-range").cloned();
        let Some(file) = file else {
            record(&state, &method, &path, range, if_range, 404);
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        };
        let len = file.bytes.len() as u64;
        // A range applies only if If-Range (when sent) still names this file.
        let range_applies = if_range.as_deref().is_none_or(|tag| tag == file.etag);
        let start = range
            .as_deref()
            .filter(|_| range_applies)
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|r| r.parse::<u64>().ok());
        let (status, head, body_start) = match start {
            Some(s) if s >= len => {
                record(&state, &method, &path, range, if_range, 416);
                let _ = write!(
                    stream,
                    "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n\r\n"
                );
                continue;
            }
            Some(s) => (
                206,
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{len}\r\nContent-Length: {}\r\nETag: {}\r\nAccept-Ranges: bytes\r\n\r\n",
                    len - 1,
                    len - s,
                    file.etag
                ),
                s,
            ),
            None => (
                200,
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nETag: {}\r\nAccept-Ranges: bytes\r\n\r\n",
                    file.etag
                ),
                0,
            ),
        };
        record(&state, &method, &path, range, if_range, status);
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        if method == "HEAD" {
            continue;
        }
        let body = &file.bytes[body_start as usize..];
        let limit = cut.map_or(body.len(), |c| (c as usize).min(body.len()));
        for chunk in body[..limit].chunks(64 * 1024) {
            if stream.write_all(chunk).is_err() {
                return;
            }
            if !throttle.is_zero() {
                std::thread::sleep(throttle);
            }
        }
        if cut.is_some() {
            // A dropped connection: the client sees the body end early.
            let _ = stream.flush();
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}

/// A request's first line and headers (names in lower case).
pub struct Head {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

/// Reads a request line and its headers; `None` when the client closed first.
pub fn read_head(reader: &mut impl BufRead) -> Option<Head> {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let mut head = Head {
        method: parts.next().unwrap_or_default().to_string(),
        path: parts.next().unwrap_or_default().to_string(),
        headers: Vec::new(),
    };
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            return Some(head);
        }
        if let Some((name, value)) = header.split_once(':') {
            head.headers
                .push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
}

fn record(
    state: &Mutex<State>,
    method: &str,
    path: &str,
    range: Option<String>,
    if_range: Option<String>,
    status: u16,
) {
    state.lock().unwrap().log.push(Served {
        method: method.into(),
        path: path.into(),
        range,
        if_range,
        status,
    });
}
