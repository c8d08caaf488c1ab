//! The one retention-governed store for everything the app keeps about the
//! user's images (workspace, masks, thumbnails, edit history, upload queue,
//! logs naming files). Each item records when it was created; a sweep deletes
//! what is 24 hours old unless the user opted in, and keeps the whole store
//! under its size cap when they did.
//!
//! Time only moves forward here: the store remembers the latest time it has
//! seen, so a clock set back cannot make an old item look young.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// How long anything of the user's is kept without opt-in.
pub const RETENTION: TimeDelta = TimeDelta::hours(24);

const INDEX_FILE: &str = "index.ron";
const ITEMS_DIR: &str = "items";

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The machine's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock the tests set by hand.
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Mutex::new(start))
    }
    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = t;
    }
    pub fn advance(&self, by: TimeDelta) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ItemKind {
    Original,
    Mask,
    Thumbnail,
    Workspace,
    EditHistory,
    UploadQueue,
    Log,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredItem {
    pub id: u64,
    pub kind: ItemKind,
    /// What the user would recognise (often a file name: user data too).
    pub label: String,
    pub created: DateTime<Utc>,
    pub size: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Index {
    next_id: u64,
    /// The latest time this store has seen.
    high_water: Option<DateTime<Utc>>,
    items: Vec<StoredItem>,
    /// When the index file was last read or written by this process: another
    /// process (the admin CLI beside the app) may have changed it since.
    #[serde(skip)]
    seen: Option<std::time::SystemTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    pub items: usize,
    pub bytes: u64,
    pub oldest_age: Option<TimeDelta>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SweepReport {
    pub removed: usize,
    pub kept: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot {action} ({source}): {}", path.display())]
pub struct StoreError {
    pub action: &'static str,
    pub source: std::io::Error,
    pub path: PathBuf,
}

fn err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError {
        action,
        source,
        path,
    }
}

pub struct RetentionStore {
    root: PathBuf,
    clock: Arc<dyn Clock>,
    index: Mutex<Index>,
}

impl std::fmt::Debug for RetentionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetentionStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl RetentionStore {
    /// Opens (or creates) the store at `root`.
    pub fn open(root: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        fs::create_dir_all(root.join(ITEMS_DIR)).map_err(err("create the local store", root))?;
        // An unreadable index loses track of items: start empty, and the
        // next sweep removes the files it no longer knows (never keeps them).
        let index = read_index(root);
        Ok(Self {
            root: root.to_path_buf(),
            clock,
            index: Mutex::new(index),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let on_disk = fs::metadata(self.root.join(INDEX_FILE))
            .and_then(|m| m.modified())
            .ok();
        if on_disk.is_some() && on_disk != index.seen {
            let high_water = index.high_water;
            *index = read_index(&self.root);
            // Never let a reload move time backwards.
            index.high_water = index.high_water.max(high_water);
        }
        index
    }

    /// The clock, never earlier than any time the store has seen before.
    fn now(&self, index: &mut Index) -> DateTime<Utc> {
        let now = self.clock.now();
        let now = index.high_water.map_or(now, |hw| hw.max(now));
        index.high_water = Some(now);
        now
    }

    fn item_path(&self, id: u64) -> PathBuf {
        self.root.join(ITEMS_DIR).join(format!("{id}.bin"))
    }

    fn save_index(&self, index: &mut Index) -> Result<(), StoreError> {
        let path = self.root.join(INDEX_FILE);
        let text = ron::to_string(&*index).expect("index always serialises");
        write_atomically(&path, text.as_bytes())?;
        index.seen = fs::metadata(&path).and_then(|m| m.modified()).ok();
        Ok(())
    }

    /// Keeps `bytes` as a new item.
    pub fn put(&self, kind: ItemKind, label: &str, bytes: &[u8]) -> Result<StoredItem, StoreError> {
        let mut index = self.lock();
        let now = self.now(&mut index);
        index.next_id += 1;
        let item = StoredItem {
            id: index.next_id,
            kind,
            label: label.to_string(),
            created: now,
            size: bytes.len() as u64,
        };
        write_atomically(&self.item_path(item.id), bytes)?;
        index.items.push(item.clone());
        self.save_index(&mut index)?;
        Ok(item)
    }

    pub fn read(&self, id: u64) -> Result<Vec<u8>, StoreError> {
        let path = self.item_path(id);
        fs::read(&path).map_err(err("read a stored item", &path))
    }

    pub fn list(&self) -> Vec<StoredItem> {
        self.lock().items.clone()
    }

    pub fn stats(&self) -> StoreStats {
        let mut index = self.lock();
        let now = self.now(&mut index);
        StoreStats {
            items: index.items.len(),
            bytes: index.items.iter().map(|i| i.size).sum(),
            oldest_age: index.items.iter().map(|i| now - i.created).max(),
        }
    }

    /// Deletes what the user's choice does not allow to stay: without
    /// opt-in, everything 24 hours old; with it, the oldest items beyond
    /// `cap_bytes`. Files the index does not know are always removed.
    pub fn sweep(&self, opted_in: bool, cap_bytes: u64) -> Result<SweepReport, StoreError> {
        let mut index = self.lock();
        let now = self.now(&mut index);
        let before = index.items.len();
        let mut doomed: Vec<u64> = Vec::new();
        if opted_in {
            let mut total: u64 = index.items.iter().map(|i| i.size).sum();
            let mut by_age: Vec<&StoredItem> = index.items.iter().collect();
            by_age.sort_by_key(|i| i.created);
            for item in by_age {
                if total <= cap_bytes {
                    break;
                }
                total -= item.size;
                doomed.push(item.id);
            }
        } else {
            doomed.extend(
                index
                    .items
                    .iter()
                    .filter(|i| now - i.created >= RETENTION)
                    .map(|i| i.id),
            );
        }
        for id in &doomed {
            remove_file(&self.item_path(*id))?;
        }
        index.items.retain(|i| !doomed.contains(&i.id));
        self.remove_strays(&index)?;
        self.save_index(&mut index)?;
        Ok(SweepReport {
            removed: before - index.items.len(),
            kept: index.items.len(),
        })
    }

    /// The items of one kind, oldest first.
    pub fn list_kind(&self, kind: ItemKind) -> Vec<StoredItem> {
        let mut items: Vec<StoredItem> = self
            .lock()
            .items
            .iter()
            .filter(|i| i.kind == kind)
            .cloned()
            .collect();
        items.sort_by_key(|i| (i.created, i.id));
        items
    }

    /// Deletes the given items (unknown ids are ignored).
    pub fn remove(&self, ids: &[u64]) -> Result<usize, StoreError> {
        let mut index = self.lock();
        let before = index.items.len();
        for id in ids {
            if index.items.iter().any(|i| i.id == *id) {
                remove_file(&self.item_path(*id))?;
            }
        }
        index.items.retain(|i| !ids.contains(&i.id));
        self.save_index(&mut index)?;
        Ok(before - index.items.len())
    }

    /// Deletes every item of one kind.
    pub fn purge_kind(&self, kind: ItemKind) -> Result<usize, StoreError> {
        let ids: Vec<u64> = self.list_kind(kind).iter().map(|i| i.id).collect();
        self.remove(&ids)
    }

    /// Deletes everything in the store.
    pub fn purge_all(&self) -> Result<usize, StoreError> {
        let mut index = self.lock();
        let removed = index.items.len();
        index.items.clear();
        self.remove_strays(&index)?;
        self.save_index(&mut index)?;
        Ok(removed)
    }

    /// Files in the items folder that no index entry accounts for (a crash
    /// between writing an item and recording it) are removed, never kept.
    fn remove_strays(&self, index: &Index) -> Result<(), StoreError> {
        let dir = self.root.join(ITEMS_DIR);
        let entries = fs::read_dir(&dir).map_err(err("list the local store", &dir))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let known = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|id| {
                    index.items.iter().any(|i| i.id == id)
                        && path.extension().is_some_and(|e| e == "bin")
                });
            if !known {
                remove_file(&path)?;
            }
        }
        Ok(())
    }
}

fn read_index(root: &Path) -> Index {
    let path = root.join(INDEX_FILE);
    let seen = fs::metadata(&path).and_then(|m| m.modified()).ok();
    // An unreadable index loses track of items: start empty, and the next
    // sweep removes the files it no longer knows (never keeps them).
    let mut index: Index = fs::read_to_string(&path)
        .ok()
        .and_then(|t| ron::from_str(&t).ok())
        .unwrap_or_default();
    index.seen = seen;
    index
}

fn remove_file(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(err("delete a stored item", path)(e))
        }
        _ => Ok(()),
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    // The temporary lives inside the store, so a crash leaves it where the
    // next sweep removes it.
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(err("write the local store", path))?;
    tmp.write_all(bytes)
        .map_err(err("write the local store", path))?;
    tmp.persist(path).map_err(|e| StoreError {
        action: "write the local store",
        source: e.error,
        path: path.to_path_buf(),
    })?;
    Ok(())
}

/// "2 h 05 min", "3 min", "1 d 4 h": ages as the status line shows them.
pub fn format_age(age: TimeDelta) -> String {
    let minutes = age.num_minutes().max(0);
    let (d, h, m) = (minutes / 1440, (minutes / 60) % 24, minutes % 60);
    match (d, h) {
        (0, 0) => format!("{m} min"),
        (0, _) => format!("{h} h {m:02} min"),
        _ => format!("{d} d {h} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        "2026-11-29T10:00:00Z".parse().unwrap()
    }

    fn store(dir: &Path) -> (RetentionStore, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(t0()));
        (RetentionStore::open(dir, clock.clone()).unwrap(), clock)
    }

    #[test]
    fn opted_out_items_survive_23h59_and_are_gone_at_24h01() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = store(dir.path());
        store.put(ItemKind::Mask, "cat.jpg", b"mask").unwrap();
        clock.advance(TimeDelta::minutes(23 * 60 + 59));
        assert_eq!(
            store.sweep(false, u64::MAX).unwrap(),
            SweepReport {
                removed: 0,
                kept: 1
            }
        );
        clock.advance(TimeDelta::minutes(2));
        assert_eq!(
            store.sweep(false, u64::MAX).unwrap(),
            SweepReport {
                removed: 1,
                kept: 0
            }
        );
        assert_eq!(fs::read_dir(dir.path().join(ITEMS_DIR)).unwrap().count(), 0);
        assert!(
            !fs::read_to_string(dir.path().join(INDEX_FILE))
                .unwrap()
                .contains("cat.jpg")
        );
    }

    #[test]
    fn opted_in_items_stay_within_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = store(dir.path());
        store.put(ItemKind::Original, "old.jpg", &[0; 100]).unwrap();
        clock.advance(TimeDelta::minutes(1));
        store.put(ItemKind::Original, "new.jpg", &[0; 100]).unwrap();
        clock.advance(TimeDelta::days(30));
        assert_eq!(store.sweep(true, 1000).unwrap().removed, 0);
        assert_eq!(store.sweep(true, 150).unwrap().removed, 1);
        assert_eq!(store.list()[0].label, "new.jpg");
    }

    #[test]
    fn a_clock_set_back_does_not_extend_retention() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = store(dir.path());
        store.put(ItemKind::Thumbnail, "a.jpg", b"x").unwrap();
        clock.advance(TimeDelta::hours(23));
        assert_eq!(store.sweep(false, u64::MAX).unwrap().removed, 0);
        // The clock jumps back a week, then moves on two hours: the item is
        // 25 hours old by the store's reckoning and must go.
        clock.advance(TimeDelta::days(-7));
        clock.advance(TimeDelta::hours(2));
        assert_eq!(
            store.sweep(false, u64::MAX).unwrap().removed,
            0,
            "time stands still while behind"
        );
        clock.set(t0() + TimeDelta::hours(25));
        assert_eq!(store.sweep(false, u64::MAX).unwrap().removed, 1);
    }

    #[test]
    fn the_high_water_mark_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, clock) = store(dir.path());
            store.put(ItemKind::Log, "log", b"x").unwrap();
            clock.advance(TimeDelta::hours(23));
            store.sweep(false, u64::MAX).unwrap();
        }
        // A new process whose clock reads the original time.
        let clock = Arc::new(ManualClock::new(
            t0() + TimeDelta::hours(1) + TimeDelta::minutes(1),
        ));
        let store = RetentionStore::open(dir.path(), clock.clone()).unwrap();
        assert_eq!(store.sweep(false, u64::MAX).unwrap().removed, 0);
        clock.set(t0() + TimeDelta::hours(24) + TimeDelta::minutes(1));
        assert_eq!(store.sweep(false, u64::MAX).unwrap().removed, 1);
    }

    #[test]
    fn stray_files_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = store(dir.path());
        store.put(ItemKind::Workspace, "w", b"x").unwrap();
        fs::write(dir.path().join(ITEMS_DIR).join("999.bin"), b"orphan").unwrap();
        store.sweep(false, u64::MAX).unwrap();
        assert_eq!(fs::read_dir(dir.path().join(ITEMS_DIR)).unwrap().count(), 1);
        assert_eq!(store.purge_all().unwrap(), 1);
        assert_eq!(fs::read_dir(dir.path().join(ITEMS_DIR)).unwrap().count(), 0);
        assert_eq!(store.stats(), StoreStats::default());
    }

    #[test]
    fn ages_read_like_a_status_line() {
        assert_eq!(format_age(TimeDelta::minutes(125)), "2 h 05 min");
        assert_eq!(format_age(TimeDelta::minutes(3)), "3 min");
        assert_eq!(format_age(TimeDelta::minutes(28 * 60)), "1 d 4 h");
    }
}
