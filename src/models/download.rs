//! Resumable, verified HTTP downloads of model files.
//!
//! A download is always something the user asked for (a button, `setup`).
//! Bytes go to `<target>.part`; an interrupted transfer is resumed with a
//! `Range` request (guarded by `If-Range`, so a file changed on the server
//! restarts cleanly instead of splicing two versions), both within one call
//! (a few quick retries) and across calls (the part file stays). The whole
//! file is checked against the expected checksum before it is moved into
//! place; a file that fails is deleted, part and all.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::checksum::{self, ChecksumMismatch, Hasher};
use crate::models::catalog::Checksum;

const USER_AGENT: &str = concat!("BackgroundErase/", env!("CARGO_PKG_VERSION"));

/// Automatic resumes within one call before giving up (the part file stays).
const ATTEMPTS: u32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes on disk so far, including any resumed part.
    pub done: u64,
    /// The whole file's size, when the server or the catalog says.
    pub total: Option<u64>,
    /// Bytes that were already there when this transfer began.
    pub resumed_from: u64,
}

impl Progress {
    pub fn fraction(&self) -> Option<f32> {
        self.total
            .filter(|&t| t > 0)
            .map(|t| (self.done as f64 / t as f64).min(1.0) as f32)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("will not download from this address: {0}")]
    Address(crate::net::AddressError),
    #[error("the server answered HTTP {status}: {url}")]
    Status { status: u16, url: String },
    #[error("cannot download ({detail}): {url}")]
    Connect { detail: String, url: String },
    #[error(
        "the download broke off after {attempts} tries ({detail}); {}: {}",
        kept(*done),
        part.display()
    )]
    Interrupted {
        attempts: u32,
        detail: String,
        done: u64,
        part: PathBuf,
    },
    #[error("download cancelled; {}: {}", kept(*done), part.display())]
    Cancelled { done: u64, part: PathBuf },
    #[error("{0}; the downloaded file was deleted")]
    Checksum(ChecksumMismatch),
    #[error("cannot {action} ({source}): {}", path.display())]
    Io {
        action: &'static str,
        source: io::Error,
        path: PathBuf,
    },
}

fn kept(done: u64) -> String {
    if done == 0 {
        "nothing was kept".into()
    } else {
        format!("{done} bytes are kept and the next try resumes from there")
    }
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DownloadError {
    let path = path.to_path_buf();
    move |source| DownloadError::Io {
        action,
        source,
        path,
    }
}

/// What to fetch and where it ends up.
pub struct Download<'a> {
    pub url: &'a str,
    /// The final file; written only once the whole file checks out.
    pub target: &'a Path,
    pub expected: &'a Checksum,
    /// The catalog's size, shown until the server says.
    pub expected_size: Option<u64>,
}

/// Where the bytes of an unfinished download of `target` are kept.
pub fn part_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    target.with_file_name(name)
}

/// The address and server validator a part file belongs to.
fn meta_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".part.source");
    target.with_file_name(name)
}

/// Bytes kept from an earlier, unfinished download of `target` from `url`.
pub fn partial_bytes(target: &Path, url: &str) -> u64 {
    match PartSource::read(&meta_path(target)) {
        Some(source) if source.url == url => fs::metadata(part_path(target)).map_or(0, |m| m.len()),
        _ => 0,
    }
}

/// Deletes what an unfinished download of `target` left.
pub fn discard_partial(target: &Path) {
    let _ = fs::remove_file(part_path(target));
    let _ = fs::remove_file(meta_path(target));
}

/// Line 1: the URL; line 2: the server's ETag or Last-Modified (may be empty).
struct PartSource {
    url: String,
    validator: String,
}

impl PartSource {
    fn read(path: &Path) -> Option<Self> {
        let text = fs::read_to_string(path).ok()?;
        let mut lines = text.lines();
        Some(Self {
            url: lines.next()?.to_string(),
            validator: lines.next().unwrap_or_default().to_string(),
        })
    }

    fn write(&self, path: &Path) -> io::Result<()> {
        fs::write(path, format!("{}\n{}\n", self.url, self.validator))
    }
}

/// An HTTP client for downloads: https only, except this computer's own
/// address (tests and local mirrors), which never goes through a proxy.
pub fn agent_for(url: &str) -> Result<ureq::Agent, DownloadError> {
    let address = crate::net::Address::parse(url).map_err(DownloadError::Address)?;
    let loopback = address.loopback;
    let mut config = ureq::Agent::config_builder()
        .tls_config(crate::net::platform_tls())
        .http_status_as_error(false)
        .https_only(!loopback)
        .user_agent(USER_AGENT)
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_recv_response(Some(Duration::from_secs(60)));
    if loopback {
        config = config.proxy(None);
    }
    Ok(config.build().into())
}

/// Worth another try: the network hiccuped; not: the address, the
/// certificate or the configuration is wrong, which a retry cannot mend.
fn is_transient(error: &ureq::Error) -> bool {
    use std::io::ErrorKind::*;
    match error {
        ureq::Error::Io(e) => matches!(
            e.kind(),
            ConnectionReset
                | ConnectionAborted
                | ConnectionRefused
                | BrokenPipe
                | TimedOut
                | UnexpectedEof
                | Interrupted
                | NotConnected
        ),
        ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed | ureq::Error::BodyStalled => true,
        _ => false,
    }
}

/// One request's outcome that the loop decides on.
enum Attempt {
    Finished,
    /// Transient (network, 5xx, early close): resume.
    Retry(String),
    /// The server ignored or refused the range: start over from byte 0.
    Restart,
}

/// Downloads `request.url` to `request.target`, resuming any part left by an
/// earlier call, reporting progress, and checking the checksum at the end.
/// `cancel` is looked at between reads; a cancelled download keeps its part.
pub fn download(
    request: &Download<'_>,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<PathBuf, DownloadError> {
    let agent = agent_for(request.url)?;
    let target = request.target;
    let part = part_path(target);
    let meta = meta_path(target);
    if let Some(dir) = target.parent() {
        fs::create_dir_all(dir).map_err(io_err("create folder", dir))?;
    }
    // A part from another address (or with no record) cannot be continued.
    let mut source = match PartSource::read(&meta) {
        Some(source) if source.url == request.url && part.is_file() => source,
        _ => {
            discard_partial(target);
            PartSource {
                url: request.url.to_string(),
                validator: String::new(),
            }
        }
    };
    let mut last_error = String::new();
    let mut restarts = 0;
    let mut attempt = 0;
    while attempt < ATTEMPTS {
        attempt += 1;
        if cancel.load(Ordering::SeqCst) {
            return Err(cancelled(&part));
        }
        match fetch_once(&agent, request, &mut source, progress, cancel)? {
            Attempt::Finished => {
                return finish(request, &part, &meta);
            }
            Attempt::Retry(why) => {
                tracing::warn!(url = request.url, %why, attempt, "download interrupted; resuming");
                last_error = why;
                // 0.5 s, 1 s, 2 s: enough for a dropped connection, short
                // enough that the user is not left wondering.
                let pause = Duration::from_millis(500 << (attempt - 1).min(3));
                if wait_or_cancel(pause, cancel) {
                    return Err(cancelled(&part));
                }
            }
            Attempt::Restart => {
                discard_partial(target);
                source.validator.clear();
                restarts += 1;
                if restarts > 1 {
                    last_error = "the server does not answer byte ranges consistently".into();
                    break;
                }
                attempt -= 1;
            }
        }
    }
    Err(DownloadError::Interrupted {
        attempts: attempt,
        detail: last_error,
        done: fs::metadata(&part).map_or(0, |m| m.len()),
        part,
    })
}

fn cancelled(part: &Path) -> DownloadError {
    DownloadError::Cancelled {
        done: fs::metadata(part).map_or(0, |m| m.len()),
        part: part.to_path_buf(),
    }
}

fn wait_or_cancel(pause: Duration, cancel: &AtomicBool) -> bool {
    let step = Duration::from_millis(50);
    let mut waited = Duration::ZERO;
    while waited < pause {
        if cancel.load(Ordering::SeqCst) {
            return true;
        }
        std::thread::sleep(step);
        waited += step;
    }
    cancel.load(Ordering::SeqCst)
}

fn fetch_once(
    agent: &ureq::Agent,
    request: &Download<'_>,
    source: &mut PartSource,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<Attempt, DownloadError> {
    let part = part_path(request.target);
    let meta = meta_path(request.target);
    let offset = fs::metadata(&part).map_or(0, |m| m.len());
    let mut call = agent.get(request.url);
    if offset > 0 {
        call = call.header("Range", format!("bytes={offset}-"));
        if !source.validator.is_empty() {
            call = call.header("If-Range", source.validator.as_str());
        }
    }
    let response = match call.call() {
        Ok(response) => response,
        Err(e) if is_transient(&e) => return Ok(Attempt::Retry(e.to_string())),
        Err(e) => {
            return Err(DownloadError::Connect {
                detail: e.to_string(),
                url: request.url.to_string(),
            });
        }
    };
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let length = header("content-length").and_then(|v| v.parse::<u64>().ok());
    let validator = header("etag")
        .filter(|v| !v.starts_with("W/"))
        .or_else(|| header("last-modified"))
        .unwrap_or_default();
    let (start, total) = match status {
        206 if offset > 0 => match header("content-range")
            .as_deref()
            .and_then(parse_content_range)
        {
            Some((first, total)) if first == offset => {
                (offset, total.or(length.map(|l| l + offset)))
            }
            _ => return Ok(Attempt::Restart),
        },
        200 => (0, length),
        // The part already holds the whole file (or more): let the checksum decide.
        416 if offset > 0 => return Ok(Attempt::Finished),
        408 | 429 | 500..=599 => return Ok(Attempt::Retry(format!("HTTP {status}"))),
        _ => {
            return Err(DownloadError::Status {
                status,
                url: request.url.to_string(),
            });
        }
    };
    source.validator = validator;
    source.write(&meta).map_err(io_err("write", &meta))?;
    let mut file = if start == 0 {
        File::create(&part).map_err(io_err("create", &part))?
    } else {
        OpenOptions::new()
            .append(true)
            .open(&part)
            .map_err(io_err("open", &part))?
    };
    let total = total.or(request.expected_size);
    let mut report = Progress {
        done: start,
        total,
        resumed_from: start,
    };
    progress(report);
    let mut body = response.into_body().into_reader();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        if cancel.load(Ordering::SeqCst) {
            file.flush().map_err(io_err("write", &part))?;
            return Err(cancelled(&part));
        }
        let n = match body.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                file.flush().map_err(io_err("write", &part))?;
                return Ok(Attempt::Retry(e.to_string()));
            }
        };
        file.write_all(&buffer[..n])
            .map_err(io_err("write", &part))?;
        report.done += n as u64;
        progress(report);
    }
    file.sync_all().map_err(io_err("write", &part))?;
    match total {
        Some(total) if report.done < total => Ok(Attempt::Retry(format!(
            "the connection closed at {} of {total} bytes",
            report.done
        ))),
        _ => Ok(Attempt::Finished),
    }
}

/// `bytes 100-199/1000` → (100, Some(1000)); `bytes 100-199/*` → (100, None).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let first = range.split_once('-')?.0.trim().parse().ok()?;
    Some((first, total.trim().parse().ok()))
}

/// Checks the finished part and moves it into place; a bad file is deleted.
fn finish(request: &Download<'_>, part: &Path, meta: &Path) -> Result<PathBuf, DownloadError> {
    let mut hasher = Hasher::for_checksum(request.expected);
    checksum::hash_file(part, &mut hasher).map_err(io_err("read", part))?;
    if let Err(mismatch) = hasher.verify(request.expected, request.target) {
        let _ = fs::remove_file(part);
        let _ = fs::remove_file(meta);
        return Err(DownloadError::Checksum(mismatch));
    }
    fs::rename(part, request.target).map_err(io_err("move into place", request.target))?;
    let _ = fs::remove_file(meta);
    Ok(request.target.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(
            parse_content_range("bytes 100-199/1000"),
            Some((100, Some(1000)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn only_https_or_this_computer() {
        assert!(agent_for("https://example.com/m.onnx").is_ok());
        assert!(agent_for("http://127.0.0.1:8080/m.onnx").is_ok());
        assert!(agent_for("http://localhost/m.onnx").is_ok());
        let err = agent_for("http://example.com/m.onnx")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("https") && err.ends_with("http://example.com/m.onnx"),
            "{err}"
        );
        // A host that merely starts like a loopback name is remote.
        assert!(agent_for("http://127.0.0.1.example.com/m.onnx").is_err());
        // User-info that spells a loopback address is a connection elsewhere.
        let err = agent_for("http://127.0.0.1:1@evil.example/m.onnx")
            .unwrap_err()
            .to_string();
        assert!(err.contains("user name or password"), "{err}");
    }

    #[test]
    fn part_files_sit_beside_the_target() {
        let target = Path::new("/m/u2netp.onnx");
        assert_eq!(part_path(target), Path::new("/m/u2netp.onnx.part"));
        assert_eq!(meta_path(target), Path::new("/m/u2netp.onnx.part.source"));
    }
}
