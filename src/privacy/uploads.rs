//! Training uploads, gated by consent.
//!
//! A sample is queued only while the user has opted in, is kept in the
//! retention store (so it obeys the same 24-hour rule and size cap as
//! everything else), and is sent by one background thread that checks consent
//! again at the moment of sending and while the body is streaming: revoking
//! consent stops an upload in flight and the revoker empties the queue.
//!
//! What is sent, as `multipart/form-data`, and nothing else: `model` (the
//! catalog id), `original` (the image's pixels as PNG, no file name and no
//! metadata such as EXIF or GPS) and `mask` (the final mask as greyscale PNG).
//! The request carries a fixed User-Agent and no identifier of the user or
//! machine.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use image::{GrayImage, RgbaImage};
use sha2::{Digest, Sha256};

use super::store::{ItemKind, RetentionStore, StoreError, StoredItem};
use crate::engine::encode::{plain_png_gray, plain_png_rgba};

/// Overrides the upload address from the settings (tests, staging).
pub const UPLOAD_URL_ENV: &str = "BACKGROUNDERASE_UPLOAD_URL";
/// Where samples go when neither the settings nor the environment say.
pub const DEFAULT_UPLOAD_URL: &str = "https://training.backgrounderase.app/v1/samples";
/// The multipart fields of a sample: the whole of what is sent.
pub const FIELDS: [&str; 3] = ["model", "original", "mask"];
const USER_AGENT: &str = "BackgroundErase";

/// Consent as background threads see it: a flag plus a counter that changes
/// with every decision, so a thread can tell that consent was withdrawn (and
/// perhaps given again) while it was working.
#[derive(Clone)]
pub struct ConsentGate(Arc<GateInner>);

struct GateInner {
    opted_in: AtomicBool,
    epoch: AtomicU64,
}

impl ConsentGate {
    pub fn new(opted_in: bool) -> Self {
        Self(Arc::new(GateInner {
            opted_in: AtomicBool::new(opted_in),
            epoch: AtomicU64::new(0),
        }))
    }

    pub fn opted_in(&self) -> bool {
        self.0.opted_in.load(Ordering::SeqCst)
    }

    pub fn epoch(&self) -> u64 {
        self.0.epoch.load(Ordering::SeqCst)
    }

    pub fn set(&self, opted_in: bool) {
        self.0.epoch.fetch_add(1, Ordering::SeqCst);
        self.0.opted_in.store(opted_in, Ordering::SeqCst);
    }

    /// Whether consent still holds as it was at `epoch`.
    fn holds_since(&self, epoch: u64) -> bool {
        self.opted_in() && self.epoch() == epoch
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the upload address must use https (plain http only to this computer): {0}")]
    Insecure(String),
    #[error("upload address refused: {0}")]
    BadAddress(String),
    #[error("cannot prepare the upload ({0})")]
    Encode(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A checked upload address: HTTPS, or plain HTTP to a loopback address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    pub loopback: bool,
    /// The host samples go to, as the Account page shows it.
    pub host: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Self, UploadError> {
        use crate::net::{Address, AddressError};
        match Address::parse(url) {
            Ok(address) => Ok(Self {
                url: url.to_string(),
                loopback: address.loopback,
                host: address.host(),
            }),
            Err(AddressError::Insecure { url }) => Err(UploadError::Insecure(url)),
            Err(other) => Err(UploadError::BadAddress(other.to_string())),
        }
    }

    /// `BACKGROUNDERASE_UPLOAD_URL`, else the settings, else the default.
    pub fn configured(settings_url: Option<&str>) -> Result<Self, UploadError> {
        let from_env = std::env::var(UPLOAD_URL_ENV).ok().filter(|v| !v.is_empty());
        let url = from_env
            .as_deref()
            .or(settings_url)
            .unwrap_or(DEFAULT_UPLOAD_URL);
        Self::parse(url)
    }
}

/// One training sample: the image, the final mask (with the user's
/// corrections), and the model that made it.
pub struct TrainingSample<'a> {
    pub original: &'a RgbaImage,
    pub mask: &'a GrayImage,
    pub model_id: &'a str,
}

/// The request body of a sample (`multipart/form-data`). The boundary is
/// derived from the content, so it cannot occur inside it.
pub fn encode_sample(sample: &TrainingSample<'_>) -> Result<Vec<u8>, UploadError> {
    let encode = |e: image::ImageError| UploadError::Encode(e.to_string());
    let original = plain_png_rgba(sample.original).map_err(encode)?;
    let mask = plain_png_gray(sample.mask).map_err(encode)?;
    let mut hash = Sha256::new();
    hash.update(sample.model_id.as_bytes());
    hash.update(&original);
    hash.update(&mask);
    let digest = hash.finalize();
    let boundary: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let boundary = format!("backgrounderase-{}", &boundary[..32]);

    let mut body = Vec::with_capacity(original.len() + mask.len() + 1024);
    let mut part = |name: &str, file: Option<&str>, content_type: &str, bytes: &[u8]| {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let disposition = match file {
            Some(f) => format!("form-data; name=\"{name}\"; filename=\"{f}\""),
            None => format!("form-data; name=\"{name}\""),
        };
        body.extend_from_slice(
            format!("Content-Disposition: {disposition}\r\nContent-Type: {content_type}\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    };
    part(
        "model",
        None,
        "text/plain; charset=utf-8",
        sample.model_id.as_bytes(),
    );
    part("original", Some("original.png"), "image/png", &original);
    part("mask", Some("mask.png"), "image/png", &mask);
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Ok(body)
}

/// The boundary a body produced by [`encode_sample`] starts with.
fn boundary_of(body: &[u8]) -> Option<String> {
    let line = body.split(|b| *b == b'\r').next()?;
    let text = std::str::from_utf8(line).ok()?;
    text.strip_prefix("--").map(str::to_string)
}

/// Queues a sample if (and only if) the user has opted in; returns the queued
/// item, or `None` when consent is off (then nothing is kept). Consent is
/// checked again under the store's lock, from the gate and from disk: whoever
/// withdraws it records that first and then empties the queue under the same
/// lock, so a sample is either refused here or emptied there.
pub fn enqueue(
    store: &RetentionStore,
    gate: &ConsentGate,
    on_disk: &ConsentOnDisk,
    label: &str,
    sample: &TrainingSample<'_>,
) -> Result<Option<StoredItem>, UploadError> {
    if !gate.opted_in() || !on_disk() {
        return Ok(None);
    }
    let epoch = gate.epoch();
    let body = encode_sample(sample)?;
    store.update(|tx| {
        if !gate.holds_since(epoch) || !on_disk() {
            return Ok(None);
        }
        Ok(Some(tx.put(ItemKind::UploadQueue, label, &body, None)?))
    })
}

/// What the Account pane shows of the uploader.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploaderState {
    /// The label of the sample being sent.
    pub in_flight: Option<String>,
    pub last_error: Option<String>,
    /// Samples sent since the app started.
    pub sent: usize,
}

/// Retry timing after a failed attempt: `first`, doubling up to `max`; a
/// sample is dropped after `max_attempts` (and the user told).
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(5),
            max: Duration::from_secs(15 * 60),
            max_attempts: 12,
        }
    }
}

impl Backoff {
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.first.saturating_mul(factor).min(self.max)
    }
}

/// The one thread that sends queued samples.
pub struct Uploader {
    kick: Sender<()>,
    shutdown: Arc<AtomicBool>,
    state: Arc<Mutex<UploaderState>>,
    _thread: JoinHandle<()>,
}

/// Whether consent holds right now, as recorded on disk (the admin command
/// line may have changed it while the app runs).
pub type ConsentOnDisk = Arc<dyn Fn() -> bool + Send + Sync>;

impl Uploader {
    /// Starts the thread. It opens no connection unless consent is on and a
    /// sample is queued.
    pub fn spawn(
        store: Arc<RetentionStore>,
        gate: ConsentGate,
        consent_on_disk: ConsentOnDisk,
        endpoint: Result<Endpoint, String>,
        backoff: Backoff,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> std::io::Result<Self> {
        let (kick, kicks) = bounded(1);
        let shutdown = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(UploaderState::default()));
        let sender = SenderThread {
            store,
            gate,
            consent_on_disk,
            endpoint,
            backoff,
            wake,
            kicks,
            shutdown: shutdown.clone(),
            state: state.clone(),
            attempts: HashMap::new(),
            agent: None,
        };
        let thread = std::thread::Builder::new()
            .name("uploader".into())
            .spawn(move || sender.run())?;
        Ok(Self {
            kick,
            shutdown,
            state,
            _thread: thread,
        })
    }

    /// Something was queued or consent changed: look at the queue now.
    pub fn kick(&self) {
        let _ = self.kick.try_send(());
    }

    /// [`Uploader::kick`] for another thread.
    pub fn kicker(&self) -> impl Fn() + Send + Sync + 'static {
        let kick = self.kick.clone();
        move || {
            let _ = kick.try_send(());
        }
    }

    pub fn state(&self) -> UploaderState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Samples sent since the app started (a counter, for every frame).
    pub fn sent(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).sent
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        // An upload in flight stops at its next chunk; the thread is not
        // joined so that closing the window never waits on the network.
        self.shutdown.store(true, Ordering::SeqCst);
        self.kick();
    }
}

struct SenderThread {
    store: Arc<RetentionStore>,
    gate: ConsentGate,
    consent_on_disk: ConsentOnDisk,
    endpoint: Result<Endpoint, String>,
    backoff: Backoff,
    wake: Arc<dyn Fn() + Send + Sync>,
    kicks: Receiver<()>,
    shutdown: Arc<AtomicBool>,
    state: Arc<Mutex<UploaderState>>,
    /// Failed attempts per queued item, and when it may be tried again.
    attempts: HashMap<u64, (u32, Instant)>,
    agent: Option<ureq::Agent>,
}

enum Outcome {
    Sent,
    Withdrawn,
    /// The server refused the sample for good (4xx other than 408/429).
    Refused(String),
    Failed(String),
}

const IDLE_WAIT: Duration = Duration::from_secs(60);

impl SenderThread {
    fn run(mut self) {
        while !self.shutdown.load(Ordering::SeqCst) {
            if !self.consent_holds() {
                self.attempts.clear();
                // Drop the connection pool: nothing stays open without consent.
                self.agent = None;
                self.wait(IDLE_WAIT);
                continue;
            }
            let now = Instant::now();
            let queue = self.store.list_kind(ItemKind::UploadQueue);
            self.attempts
                .retain(|id, _| queue.iter().any(|i| i.id == *id));
            let ready = queue.iter().find(|item| {
                self.attempts
                    .get(&item.id)
                    .is_none_or(|(_, retry_at)| *retry_at <= now)
            });
            let Some(item) = ready.cloned() else {
                let next = self.attempts.values().map(|(_, at)| *at).min();
                self.wait(next.map_or(IDLE_WAIT, |at| at.saturating_duration_since(now)));
                continue;
            };
            let endpoint = match &self.endpoint {
                Ok(endpoint) => endpoint.clone(),
                Err(message) => {
                    self.set_state(|s| s.last_error = Some(message.clone()));
                    self.wait(IDLE_WAIT);
                    continue;
                }
            };
            let Ok(body) = self.store.read(item.id) else {
                // Its file is gone (deleted by another process): forget it.
                let _ = self.store.remove(&[item.id]);
                continue;
            };
            let epoch = self.gate.epoch();
            // The check at the moment of sending.
            if !self.consent_holds() {
                continue;
            }
            self.set_state(|s| s.in_flight = Some(item.label.clone()));
            let outcome = self.send(&endpoint, body, epoch);
            self.set_state(|s| s.in_flight = None);
            match outcome {
                Outcome::Sent => {
                    let _ = self.store.remove(&[item.id]);
                    let _ = self
                        .store
                        .put(ItemKind::Log, &format!("sent {}", item.label), b"");
                    self.attempts.remove(&item.id);
                    self.set_state(|s| {
                        s.sent += 1;
                        s.last_error = None;
                    });
                }
                Outcome::Withdrawn => {}
                Outcome::Refused(why) => {
                    let _ = self.store.remove(&[item.id]);
                    self.set_state(|s| {
                        s.last_error = Some(format!("{} was not accepted ({why})", item.label))
                    });
                }
                Outcome::Failed(why) => {
                    let tries = self.attempts.get(&item.id).map_or(0, |(n, _)| *n) + 1;
                    if tries >= self.backoff.max_attempts {
                        let _ = self.store.remove(&[item.id]);
                        self.attempts.remove(&item.id);
                        self.set_state(|s| {
                            s.last_error = Some(format!(
                                "gave up sending {} after {tries} attempts ({why})",
                                item.label
                            ))
                        });
                    } else {
                        let retry_at = Instant::now() + self.backoff.delay(tries);
                        self.attempts.insert(item.id, (tries, retry_at));
                        self.set_state(|s| {
                            s.last_error = Some(format!("upload failed, will retry ({why})"))
                        });
                    }
                }
            }
            (self.wake)();
        }
    }

    /// Consent from the gate and from disk. If the disk says no while the
    /// gate says yes, consent was withdrawn elsewhere: act as a revoke.
    fn consent_holds(&self) -> bool {
        if !self.gate.opted_in() {
            return false;
        }
        if (self.consent_on_disk)() {
            return true;
        }
        self.gate.set(false);
        let _ = self.store.purge_kind(ItemKind::UploadQueue);
        (self.wake)();
        false
    }

    fn wait(&self, timeout: Duration) {
        let _ = self.kicks.recv_timeout(timeout);
    }

    fn set_state(&self, change: impl FnOnce(&mut UploaderState)) {
        change(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
        (self.wake)();
    }

    fn send(&mut self, endpoint: &Endpoint, body: Vec<u8>, epoch: u64) -> Outcome {
        let Some(boundary) = boundary_of(&body) else {
            return Outcome::Refused("the queued sample is damaged".into());
        };
        let agent = self.agent.get_or_insert_with(|| {
            let mut config = ureq::Agent::config_builder()
                .tls_config(crate::net::platform_tls())
                .http_status_as_error(false)
                // A redirect could send samples somewhere the user was not
                // shown: it is refused (as a 3xx status) instead.
                .max_redirects(0)
                .https_only(!endpoint.loopback)
                .user_agent(USER_AGENT)
                .timeout_connect(Some(Duration::from_secs(15)))
                .timeout_global(Some(Duration::from_secs(10 * 60)));
            if endpoint.loopback {
                // Never route this computer's own address through a proxy.
                config = config.proxy(None);
            }
            config.build().into()
        });
        let length = body.len();
        let reader = GatedReader {
            body: Cursor::new(body),
            gate: self.gate.clone(),
            consent_on_disk: self.consent_on_disk.clone(),
            epoch,
            shutdown: self.shutdown.clone(),
        };
        let result = agent
            .post(&endpoint.url)
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .header("Content-Length", length.to_string())
            .send(ureq::SendBody::from_owned_reader(reader));
        if !self.gate.holds_since(epoch) {
            return Outcome::Withdrawn;
        }
        match result {
            Ok(response) => {
                let status = response.status().as_u16();
                match status {
                    200..=299 => Outcome::Sent,
                    408 | 429 | 500..=599 => Outcome::Failed(format!("HTTP {status}")),
                    _ => Outcome::Refused(format!("HTTP {status}")),
                }
            }
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }
}

/// Streams a body in small pieces and fails as soon as consent is withdrawn
/// (in this process, or on disk by `privacy opt-out` from a terminal) or
/// the app closes, which aborts the request mid-way.
struct GatedReader {
    body: Cursor<Vec<u8>>,
    gate: ConsentGate,
    consent_on_disk: ConsentOnDisk,
    epoch: u64,
    shutdown: Arc<AtomicBool>,
}

impl Read for GatedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let withdrawn_on_disk = || {
            let gone = !(self.consent_on_disk)();
            if gone {
                // Seen here first: the whole app follows.
                self.gate.set(false);
            }
            gone
        };
        if !self.gate.holds_since(self.epoch)
            || self.shutdown.load(Ordering::SeqCst)
            || withdrawn_on_disk()
        {
            return Err(std::io::Error::other("consent withdrawn"));
        }
        let n = buf.len().min(64 * 1024);
        self.body.read(&mut buf[..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_is_accepted() {
        assert!(Endpoint::parse("https://example.com/v1").is_ok());
        assert!(
            Endpoint::parse("http://127.0.0.1:8080/up")
                .unwrap()
                .loopback
        );
        assert!(Endpoint::parse("http://localhost/up").unwrap().loopback);
        assert!(Endpoint::parse("http://[::1]:9/up").unwrap().loopback);
        assert!(matches!(
            Endpoint::parse("http://example.com/up"),
            Err(UploadError::Insecure(_))
        ));
        assert!(matches!(
            Endpoint::parse("http://10.0.0.1/up"),
            Err(UploadError::Insecure(_))
        ));
        assert!(Endpoint::parse("ftp://example.com/").is_err());
        assert!(Endpoint::parse("not a url").is_err());
    }

    #[test]
    fn backoff_doubles_up_to_the_limit() {
        let b = Backoff {
            first: Duration::from_secs(2),
            max: Duration::from_secs(60),
            max_attempts: 5,
        };
        let delays: Vec<u64> = (1..=7).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(delays, vec![2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn nothing_is_queued_or_encoded_without_consent() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            RetentionStore::open(dir.path(), Arc::new(super::super::store::SystemClock)).unwrap();
        let gate = ConsentGate::new(false);
        let image = RgbaImage::new(4, 4);
        let mask = GrayImage::new(4, 4);
        let sample = TrainingSample {
            original: &image,
            mask: &mask,
            model_id: "m",
        };
        let yes: ConsentOnDisk = Arc::new(|| true);
        let no: ConsentOnDisk = Arc::new(|| false);
        assert!(
            enqueue(&store, &gate, &yes, "a.jpg", &sample)
                .unwrap()
                .is_none()
        );
        assert_eq!(store.stats().items, 0);
        gate.set(true);
        assert!(
            enqueue(&store, &gate, &no, "a.jpg", &sample)
                .unwrap()
                .is_none()
        );
        assert!(
            enqueue(&store, &gate, &yes, "a.jpg", &sample)
                .unwrap()
                .is_some()
        );
        assert_eq!(store.list_kind(ItemKind::UploadQueue).len(), 1);
    }
}
