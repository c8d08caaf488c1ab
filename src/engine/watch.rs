//! A watched ("hot") folder: new or changed images are handed to the batch
//! machinery once they have stopped changing. The platform's file-change
//! notifications wake it; a periodic rescan catches what they miss (network
//! shares, a full event queue, a notifier that could not start). What is
//! finished is the batch manifest's business, so a restart picks up exactly
//! what arrived while nothing watched.
//!
//! Plain Rust: the CLI's `watch` loop and the app's "Keep watching" both
//! drive a [`FolderWatch`] and run its [`Ready`] plans through the batch
//! code.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use notify::{EventKind, RecursiveMode, Watcher};

use super::batch::Plan;

/// How long a file must stay unchanged before it is read: a copy in
/// progress keeps changing its size and times.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(2);
/// How often the whole folder is looked at even without a notification.
pub const DEFAULT_RESCAN: Duration = Duration::from_secs(60);

/// What a file looked like when it was last seen. Any write changes the
/// change time (ctime), even one that restores size and mtime (`cp -p`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Signature {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Signature {
    /// Time since the last change, by the wall clock; `None` when that
    /// lies in the future.
    fn age(&self) -> Option<Duration> {
        let latest = self.mtime_ns.max(self.ctime_ns);
        let now = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_nanos() as i128;
        u64::try_from(now - latest).ok().map(Duration::from_nanos)
    }

    fn of(path: &Path) -> Option<Self> {
        let meta = fs::metadata(path).ok()?;
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        #[cfg(unix)]
        let ctime_ns = {
            use std::os::unix::fs::MetadataExt;
            i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec())
        };
        #[cfg(not(unix))]
        let ctime_ns = 0;
        Some(Self {
            size: meta.len(),
            mtime_ns,
            ctime_ns,
        })
    }
}

/// The part of a plan that may be processed now.
#[derive(Debug, Clone, Default)]
pub struct Ready {
    /// The plan, keeping only the jobs whose file has settled.
    pub plan: Plan,
    /// Files still changing (or seen only once so far).
    pub settling: usize,
    /// Files handed out before that failed, unchanged since: retried only
    /// once they change.
    pub failed_unchanged: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("not a folder, cannot watch it: {}", .0.display())]
    NotAFolder(PathBuf),
    #[error("cannot start the watch thread: {0}")]
    Thread(std::io::Error),
}

/// Watches one input folder.
pub struct FolderWatch {
    input: PathBuf,
    settle: Duration,
    rescan: Duration,
    /// One token is enough: the next scan sees every change since.
    wake: Receiver<()>,
    /// Kept alive for its notifications; `None` when it could not start.
    _notifier: Option<notify::RecommendedWatcher>,
    notifier_error: Option<String>,
    /// Files not yet handed out: their signature and since when it holds.
    seen: HashMap<PathBuf, (Signature, Instant)>,
    /// Files handed out, with the signature they had then.
    handed_out: HashMap<PathBuf, Signature>,
}

impl FolderWatch {
    /// Starts watching `input` (subfolders too). Changes under `ignore`
    /// (the output folder, when it sits inside the input) do not wake it.
    pub fn new(
        input: &Path,
        ignore: Option<&Path>,
        settle: Duration,
        rescan: Duration,
    ) -> Result<Self, WatchError> {
        if !input.is_dir() {
            return Err(WatchError::NotAFolder(input.to_path_buf()));
        }
        let (tx, wake) = crossbeam_channel::bounded(1);
        let ignore = ignore.and_then(|p| p.canonicalize().ok());
        let (notifier, notifier_error) = match start_notifier(input, ignore, tx) {
            Ok(n) => (Some(n), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Ok(Self {
            input: input.to_path_buf(),
            settle,
            rescan: rescan.max(Duration::from_millis(100)),
            wake,
            _notifier: notifier,
            notifier_error,
            seen: HashMap::new(),
            handed_out: HashMap::new(),
        })
    }

    /// Why change notifications are off (the periodic rescan still runs).
    pub fn notifier_error(&self) -> Option<&str> {
        self.notifier_error.as_deref()
    }

    /// Keeps the jobs of `plan` whose file has not changed for the settle
    /// time, and hands them out: each version of a file is handed out once.
    pub fn ready(&mut self, mut plan: Plan) -> Ready {
        let now = Instant::now();
        let mut settling = 0;
        let mut failed_unchanged = 0;
        let mut seen = HashMap::new();
        let mut handed_out = HashMap::new();
        plan.jobs.retain(|job| {
            let Some(signature) = Signature::of(&job.input) else {
                // Deleted since the plan was made.
                return false;
            };
            let key = &job.relative;
            if self.handed_out.get(key) == Some(&signature) {
                failed_unchanged += 1;
                handed_out.insert(key.clone(), signature);
                return false;
            }
            let since = match self.seen.get(key) {
                Some((before, since)) if *before == signature => *since,
                // Unchanged for longer than the settle time already (by the
                // file's own times): no need to watch it settle. A clock
                // set back only delays this to the next look.
                None if signature.age() >= Some(self.settle) => {
                    now.checked_sub(self.settle).unwrap_or(now)
                }
                _ => now,
            };
            if now.duration_since(since) >= self.settle {
                handed_out.insert(key.clone(), signature);
                true
            } else {
                settling += 1;
                seen.insert(key.clone(), (signature, since));
                false
            }
        });
        // Only what the folder still holds unfinished is remembered: memory
        // follows the folder, not the length of the run.
        self.seen = seen;
        self.handed_out = handed_out;
        Ready {
            plan,
            settling,
            failed_unchanged,
        }
    }

    /// Blocks until something in the folder changes, the settle time of a
    /// settling file passes, or the rescan interval is up.
    pub fn wait(&self, settling: bool) {
        let _ = self.wait_timeout(if settling {
            (self.settle / 2).max(Duration::from_millis(100))
        } else {
            self.rescan
        });
    }

    /// As [`wait`](Self::wait) with an explicit limit: true when woken by a
    /// notification.
    pub fn wait_timeout(&self, limit: Duration) -> bool {
        match self.wake.recv_timeout(limit) {
            Ok(()) => true,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                if self.notifier_error.is_some() {
                    // No notifier: the channel is closed, so wait by sleeping.
                    std::thread::sleep(limit.min(Duration::from_secs(1)));
                }
                false
            }
        }
    }

    pub fn input(&self) -> &Path {
        &self.input
    }
}

fn start_notifier(
    input: &Path,
    ignore: Option<PathBuf>,
    tx: Sender<()>,
) -> notify::Result<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let wake = match event {
            // Reading an input (ours or anyone's) is not a change.
            Ok(event) if matches!(event.kind, EventKind::Access(_)) => {
                matches!(
                    event.kind,
                    EventKind::Access(notify::event::AccessKind::Close(
                        notify::event::AccessMode::Write
                    ))
                ) && !all_ignored(&event.paths, ignore.as_deref())
            }
            Ok(event) => !all_ignored(&event.paths, ignore.as_deref()),
            // A lost event (queue overflow): look at everything.
            Err(_) => true,
        };
        if wake {
            let _ = tx.try_send(());
        }
    })?;
    watcher.watch(input, RecursiveMode::Recursive)?;
    Ok(watcher)
}

/// True when every path is inside the ignored folder (our own outputs).
fn all_ignored(paths: &[PathBuf], ignore: Option<&Path>) -> bool {
    let Some(ignore) = ignore else {
        return false;
    };
    !paths.is_empty()
        && paths.iter().all(|p| {
            p.starts_with(ignore)
                || p.parent()
                    .and_then(|parent| parent.canonicalize().ok())
                    .is_some_and(|parent| parent.starts_with(ignore))
        })
}

/// A watch on its own thread, for the app: it plans with `settings` and
/// sends the input-relative paths of files that have settled; the app runs
/// them as a batch on its worker (the one owner of the model).
pub struct WatchHandle {
    stop: Arc<AtomicBool>,
    ready: Receiver<Vec<PathBuf>>,
}

impl WatchHandle {
    /// `wake` is called after every list sent.
    pub fn spawn(
        input: &Path,
        output: &Path,
        settings: super::batch::BatchSettings,
        settle: Duration,
        rescan: Duration,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> Result<Self, WatchError> {
        let mut watch = FolderWatch::new(input, Some(output), settle, rescan)?;
        let stop = Arc::new(AtomicBool::new(false));
        // Bounded: a busy window slows the watch rather than growing memory.
        let (tx, ready) = crossbeam_channel::bounded(4);
        let output = output.to_path_buf();
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("watch".into())
            .spawn(move || {
                let mut last_scan: Option<Instant> = None;
                let mut settling = false;
                while !stopped.load(Ordering::Relaxed) {
                    let due = last_scan.is_none_or(|at| {
                        at.elapsed()
                            >= if settling {
                                watch.settle / 2
                            } else {
                                watch.rescan
                            }
                    });
                    // Short waits: a stop is noticed within a quarter second.
                    if !due && !watch.wait_timeout(Duration::from_millis(250)) {
                        continue;
                    }
                    last_scan = Some(Instant::now());
                    let Ok(plan) = super::batch::plan(watch.input(), &output, &settings, None)
                    else {
                        // The folder went away for now (unmounted): try later.
                        settling = false;
                        continue;
                    };
                    let ready = watch.ready(plan);
                    settling = ready.settling > 0;
                    if ready.plan.jobs.is_empty() {
                        continue;
                    }
                    let files = ready.plan.jobs.into_iter().map(|j| j.relative).collect();
                    if tx.send(files).is_err() {
                        return;
                    }
                    wake();
                }
            })
            .map_err(WatchError::Thread)?;
        Ok(Self { stop, ready })
    }

    /// The files that settled since the last call.
    pub fn poll(&self) -> Vec<PathBuf> {
        self.ready.try_iter().flatten().collect()
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::batch::{self, BatchSettings};

    fn plan(input: &Path, output: &Path) -> Plan {
        batch::plan(input, output, &BatchSettings::default(), None).unwrap()
    }

    #[test]
    fn a_file_is_handed_out_once_it_settles_and_only_once_per_version() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        let output = dir.path().join("out");
        fs::create_dir_all(&input).unwrap();
        let settle = Duration::from_millis(300);
        let mut watch = FolderWatch::new(&input, Some(&output), settle, DEFAULT_RESCAN).unwrap();
        fs::write(input.join("a.png"), b"first half").unwrap();

        let first = watch.ready(plan(&input, &output));
        assert!(first.plan.jobs.is_empty(), "a file seen once is not read");
        assert_eq!(first.settling, 1);

        // Still growing: the clock starts again.
        std::thread::sleep(Duration::from_millis(200));
        fs::write(input.join("a.png"), b"first half, second half").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(watch.ready(plan(&input, &output)).settling, 1);

        std::thread::sleep(settle);
        let settled = watch.ready(plan(&input, &output));
        assert_eq!(settled.plan.jobs.len(), 1);
        assert_eq!(settled.plan.jobs[0].size, 23);

        // Not finished (no manifest line): not handed out again unchanged…
        let again = watch.ready(plan(&input, &output));
        assert!(again.plan.jobs.is_empty());
        assert_eq!(again.failed_unchanged, 1);
        // …but once it changes, it is.
        fs::write(input.join("a.png"), b"fixed").unwrap();
        assert_eq!(watch.ready(plan(&input, &output)).settling, 1);
        std::thread::sleep(settle);
        assert_eq!(watch.ready(plan(&input, &output)).plan.jobs.len(), 1);
    }

    #[test]
    fn a_file_unchanged_for_long_is_ready_at_first_sight() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        let output = dir.path().join("out");
        fs::create_dir_all(&input).unwrap();
        fs::write(input.join("old.jpg"), b"there before").unwrap();
        let settle = Duration::from_millis(300);
        std::thread::sleep(settle + Duration::from_millis(50));
        let mut watch = FolderWatch::new(&input, None, settle, DEFAULT_RESCAN).unwrap();
        assert_eq!(watch.ready(plan(&input, &output)).plan.jobs.len(), 1);
    }

    #[test]
    fn the_thread_sends_settled_files_and_stops_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        let output = dir.path().join("out");
        fs::create_dir_all(&input).unwrap();
        let (woken_tx, woken) = crossbeam_channel::bounded(8);
        let handle = WatchHandle::spawn(
            &input,
            &output,
            BatchSettings::default(),
            Duration::from_millis(300),
            DEFAULT_RESCAN,
            Arc::new(move || {
                let _ = woken_tx.try_send(());
            }),
        )
        .unwrap();
        fs::create_dir_all(input.join("sub")).unwrap();
        fs::write(input.join("sub/new.png"), b"x").unwrap();
        woken.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(handle.poll(), vec![PathBuf::from("sub/new.png")]);
        drop(handle);
        std::thread::sleep(Duration::from_millis(400));
        fs::write(input.join("later.png"), b"y").unwrap();
        assert!(woken.recv_timeout(Duration::from_secs(2)).is_err());
    }

    #[test]
    fn a_deleted_file_is_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        let output = dir.path().join("out");
        fs::create_dir_all(&input).unwrap();
        let mut watch =
            FolderWatch::new(&input, None, Duration::from_millis(100), DEFAULT_RESCAN).unwrap();
        fs::write(input.join("gone.jpg"), b"x").unwrap();
        let stale = plan(&input, &output);
        assert_eq!(watch.ready(stale.clone()).settling, 1);
        fs::remove_file(input.join("gone.jpg")).unwrap();
        std::thread::sleep(Duration::from_millis(150));
        let ready = watch.ready(stale);
        assert!(ready.plan.jobs.is_empty());
        assert_eq!(ready.settling, 0);
        assert!(watch.seen.is_empty());
    }

    #[test]
    fn a_new_file_wakes_the_watch_and_its_own_outputs_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        let output = input.join("out");
        fs::create_dir_all(&output).unwrap();
        let watch =
            FolderWatch::new(&input, Some(&output), DEFAULT_SETTLE, DEFAULT_RESCAN).unwrap();
        assert_eq!(watch.notifier_error(), None);
        fs::write(output.join("result.png"), b"ours").unwrap();
        assert!(!watch.wait_timeout(Duration::from_millis(500)));
        fs::write(input.join("new.jpg"), b"theirs").unwrap();
        assert!(watch.wait_timeout(Duration::from_secs(5)));
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_it() {
        let err = FolderWatch::new(
            Path::new("/nonexistent/hot"),
            None,
            DEFAULT_SETTLE,
            DEFAULT_RESCAN,
        )
        .err()
        .unwrap();
        assert!(err.to_string().ends_with("/nonexistent/hot"), "{err}");
    }
}
