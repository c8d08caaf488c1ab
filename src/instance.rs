//! One app window per profile. The first launch holds a lock in the data
//! folder and listens on a socket beside it; a later launch (double-clicking
//! images in a file manager, `backgrounderase a.jpg` from a terminal) hands
//! its files to that window and exits. Two windows would each keep their own
//! idea of the workspace and of what is stored.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, bounded};

use crate::paths::AppDirs;

const LOCK_FILE: &str = "instance.lock";
const SOCKET_FILE: &str = "instance.sock";
const MAGIC: &[u8; 4] = b"BE1\n";
/// Enough for thousands of paths; more is not a handoff.
const MAX_MESSAGE: u64 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("cannot {action} ({source}): {}", path.display())]
    Io {
        action: &'static str,
        source: std::io::Error,
        path: PathBuf,
    },
    #[error("BackgroundErase is already running for this profile but did not take the files ({0})")]
    NoAnswer(String),
}

/// What this launch is.
pub enum Claim {
    /// The only window: open it.
    First(FirstInstance),
    /// A window is open already: hand it the files.
    Running,
}

/// The lock (and the socket) of the window that is open.
pub struct FirstInstance {
    _lock: File,
    #[cfg(unix)]
    listener: Option<std::os::unix::net::UnixListener>,
}

/// Files handed over by later launches (absolute paths).
pub type Handoff = Receiver<Vec<PathBuf>>;

pub fn claim(dirs: &AppDirs) -> Result<Claim, InstanceError> {
    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| InstanceError::Io {
            action,
            source,
            path,
        }
    };
    crate::fsutil::private_dir(&dirs.data).map_err(io("create the data folder", &dirs.data))?;
    let lock_path = dirs.data.join(LOCK_FILE);
    let lock = crate::fsutil::open_lock_file(&lock_path)
        .map_err(io("open the instance lock", &lock_path))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(Claim::Running),
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(io("take the instance lock", &lock_path)(e));
        }
    }
    #[cfg(unix)]
    {
        // Holding the lock, any socket file there is a dead window's.
        let listener = socket_path(dirs).and_then(|path| {
            let _ = std::fs::remove_file(&path);
            std::os::unix::net::UnixListener::bind(&path)
                .inspect_err(|e| {
                    tracing::warn!("other launches cannot hand files to this window ({e})")
                })
                .ok()
        });
        Ok(Claim::First(FirstInstance {
            _lock: lock,
            listener,
        }))
    }
    #[cfg(not(unix))]
    {
        Ok(Claim::First(FirstInstance { _lock: lock }))
    }
}

/// The socket's path: beside the lock, or (a path too long for a socket
/// address) in the user's runtime folder.
#[cfg(unix)]
fn socket_path(dirs: &AppDirs) -> Option<PathBuf> {
    let beside = dirs.data.join(SOCKET_FILE);
    if beside.as_os_str().len() < 100 {
        return Some(beside);
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(dirs.data.as_os_str().as_encoded_bytes());
    let short: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty())?;
    Some(PathBuf::from(runtime).join(format!("backgrounderase-{short}.sock")))
}

impl FirstInstance {
    /// Listens for later launches on a thread; `wake` is called after each
    /// handoff (the window repaints and opens the files).
    pub fn serve(self, wake: Arc<dyn Fn() + Send + Sync>) -> (Handoff, InstanceGuard) {
        let (tx, rx) = bounded::<Vec<PathBuf>>(16);
        #[cfg(unix)]
        if let Some(listener) = self.listener {
            let spawned = std::thread::Builder::new()
                .name("instance".into())
                .spawn(move || {
                    for stream in listener.incoming() {
                        let Ok(mut stream) = stream else { continue };
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                        let Some(paths) = read_message(&mut stream) else {
                            continue;
                        };
                        let _ = stream.write_all(b"ok\n");
                        // A full queue: the window is stuck; the launch was answered.
                        let _ = tx.try_send(paths);
                        wake();
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!("other launches cannot hand files to this window ({e})");
            }
        }
        #[cfg(not(unix))]
        let _ = (tx, wake);
        (rx, InstanceGuard { _lock: self._lock })
    }
}

/// Keeps the instance lock for as long as the window is open.
pub struct InstanceGuard {
    _lock: File,
}

#[cfg(unix)]
fn read_message(stream: &mut impl Read) -> Option<Vec<PathBuf>> {
    use std::os::unix::ffi::OsStringExt;
    let mut bytes = Vec::new();
    stream.take(MAX_MESSAGE).read_to_end(&mut bytes).ok()?;
    let mut rest = bytes.strip_prefix(MAGIC)?;
    let mut paths = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        let (path, tail) = (tail.get(..len)?, tail.get(len..)?);
        paths.push(PathBuf::from(std::ffi::OsString::from_vec(path.to_vec())));
        rest = tail;
    }
    Some(paths)
}

/// Hands `paths` (made absolute) to the open window, waiting a few seconds
/// for it to listen if it is just starting.
pub fn hand_over(dirs: &AppDirs, paths: &[PathBuf]) -> Result<(), InstanceError> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let path = socket_path(dirs)
            .ok_or_else(|| InstanceError::NoAnswer("no socket to reach it".into()))?;
        let mut message = MAGIC.to_vec();
        for p in paths {
            let p = std::path::absolute(p).unwrap_or_else(|_| p.clone());
            let bytes = p.as_os_str().as_bytes();
            message.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            message.extend_from_slice(bytes);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            match std::os::unix::net::UnixStream::connect(&path) {
                Ok(stream) => break stream,
                Err(e) if Instant::now() >= deadline => {
                    return Err(InstanceError::NoAnswer(e.to_string()));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        stream
            .write_all(&message)
            .and_then(|()| stream.shutdown(std::net::Shutdown::Write))
            .map_err(|e| InstanceError::NoAnswer(e.to_string()))?;
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        if answer.trim() == "ok" {
            Ok(())
        } else {
            Err(InstanceError::NoAnswer("no acknowledgement".into()))
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (dirs, paths);
        Err(InstanceError::NoAnswer(
            "handing files over is not supported on this system yet; close the other window first"
                .into(),
        ))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_second_launch_hands_its_files_to_the_first() {
        let home = tempfile::tempdir().unwrap();
        let dirs = AppDirs::under(home.path());
        let Claim::First(first) = claim(&dirs).unwrap() else {
            panic!("the first launch must own the window");
        };
        let (handoff, _guard) = first.serve(Arc::new(|| {}));
        assert!(matches!(claim(&dirs).unwrap(), Claim::Running));
        use std::os::unix::ffi::OsStrExt;
        let odd = PathBuf::from(std::ffi::OsStr::from_bytes(
            b"/photos/caf\xe9 new\nline.jpg",
        ));
        hand_over(&dirs, &[odd.clone(), PathBuf::from("/b.png")]).unwrap();
        let got = handoff.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(got, vec![odd, PathBuf::from("/b.png")]);
    }
}
