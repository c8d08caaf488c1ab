//! The one retention-governed store for everything the app keeps about the
//! user's images (recent work, masks, pasted pixels, the upload queue, the
//! record of what was sent). Each item records when it was written; without
//! opt-in a sweep deletes whatever would pass 24 hours before the next sweep
//! can run, and with it the store stays under its size cap.
//!
//! **Time.** An item's `created` is the machine's clock when it was written.
//! Its age is `max(now, high_water) − created`, where `high_water` is the
//! latest time any process has seen here (kept in the index): a clock that
//! jumps forward can only make items older, and one set back cannot make
//! them younger.
//!
//! **Processes.** Every change (write, sweep, purge) runs under an advisory
//! lock on `<store>/lock`, taken by the app, the command line and the
//! scheduled sweep alike, and starts from the index as it is on disk: two
//! processes never take the same id, never delete each other's fresh files,
//! and never write back an index from before a purge.
//!
//! **Disk.** Folders are 0700 and files 0600, each write is flushed (file and
//! folder) before the index names it, a store whose folders are symbolic
//! links is refused, and a sweep deletes only names the store itself makes
//! (`<id>.bin`, `.tmp-*`): anything else in its folders is left alone.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::fsutil::{self, TEMP_PREFIX};

/// How long anything of the user's may stay without opt-in.
pub const RETENTION: TimeDelta = TimeDelta::hours(24);
/// The longest gap between two sweeps: the hourly scheduled clean-up.
pub const SWEEP_PERIOD: TimeDelta = TimeDelta::hours(1);
/// A scheduled sweep may start a little late (timer accuracy, a busy disk).
pub const SWEEP_SLACK: TimeDelta = TimeDelta::minutes(5);

/// The age at which a sweep deletes an item (opted out): anything that
/// would pass 24 hours before the next sweep can run.
pub fn sweep_age() -> TimeDelta {
    RETENTION - SWEEP_PERIOD - SWEEP_SLACK
}

const INDEX_FILE: &str = "index.ron";
const ITEMS_DIR: &str = "items";
const LOCK_FILE: &str = "lock";
/// Where exports in progress are recorded (see [`crate::partials`]).
pub const PARTIALS_DIR: &str = "partials";

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ItemKind {
    Original,
    Mask,
    Thumbnail,
    /// One open image of the workspace (name, path, strokes, its items).
    Workspace,
    EditHistory,
    UploadQueue,
    Log,
}

impl ItemKind {
    /// Plural, for status lines ("2 masks").
    pub fn plural(self) -> &'static str {
        match self {
            ItemKind::Original => "pasted images",
            ItemKind::Mask => "masks",
            ItemKind::Thumbnail => "thumbnails",
            ItemKind::Workspace => "workspace entries",
            ItemKind::EditHistory => "edit histories",
            ItemKind::UploadQueue => "queued uploads",
            ItemKind::Log => "upload records",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredItem {
    pub id: u64,
    pub kind: ItemKind,
    /// What the user would recognise (often a file name: user data too).
    pub label: String,
    /// The machine's clock when first written (kept when rewritten).
    pub created: DateTime<Utc>,
    pub size: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Index {
    next_id: u64,
    /// The latest time this store has seen.
    high_water: Option<DateTime<Utc>>,
    items: Vec<StoredItem>,
}

/// What a kind of item amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindStats {
    pub kind: ItemKind,
    pub items: usize,
    pub bytes: u64,
    pub oldest_age: TimeDelta,
    /// When the oldest one is written, by the store's reckoning.
    pub oldest_created: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreStats {
    pub items: usize,
    pub bytes: u64,
    pub oldest_age: Option<TimeDelta>,
    /// Per kind, in [`ItemKind`] order.
    pub kinds: Vec<KindStats>,
    /// `max(now, high_water)`: the time ages are counted from.
    pub now: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SweepReport {
    pub removed: usize,
    pub kept: usize,
    /// Deleted items per kind.
    pub removed_kinds: BTreeMap<ItemKind, usize>,
    /// Leftover temporary files and unindexed item files deleted.
    pub strays: usize,
    /// Partial exports left by a process that died, deleted.
    pub partials: usize,
}

/// What a sweep keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Opted out: items younger than this age.
    YoungerThan(TimeDelta),
    /// Opted in: the newest items up to this many bytes.
    UpTo(u64),
}

impl Keep {
    /// The rule for the user's choice.
    pub fn for_consent(opted_in: bool, cap_bytes: u64) -> Self {
        if opted_in {
            Keep::UpTo(cap_bytes)
        } else {
            Keep::YoungerThan(sweep_age())
        }
    }
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

/// The index as this process last read it, and which file that was.
struct Cached {
    index: Index,
    stamp: Option<FileStamp>,
}

/// Tells one version of the index file from another: every write is a new
/// file renamed into place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    inode: u64,
    modified: Option<std::time::SystemTime>,
    len: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<Self> {
        let meta = fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(Self {
            inode,
            modified: meta.modified().ok(),
            len: meta.len(),
        })
    }
}

pub struct RetentionStore {
    root: PathBuf,
    clock: Arc<dyn Clock>,
    /// The index as last read or written. Held only for a moment: readers
    /// (the Account page, the app) never wait while a change writes items.
    cache: Mutex<Cached>,
    /// One change at a time in this process (the lock file's `flock` does
    /// not tell threads sharing it apart); held for a whole change.
    changing: Mutex<()>,
    lock_file: File,
}

impl std::fmt::Debug for RetentionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetentionStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// Changes made under the store's lock: see [`RetentionStore::update`].
pub struct Txn<'a> {
    store: &'a RetentionStore,
    index: &'a mut Index,
    /// `max(now, high_water)`.
    now: DateTime<Utc>,
    /// The machine's clock.
    clock_now: DateTime<Utc>,
    /// Something changed: the index must be written.
    dirty: bool,
}

impl Txn<'_> {
    /// The time ages are counted from.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// How old an item written at `created` is.
    pub fn age(&self, created: DateTime<Utc>) -> TimeDelta {
        self.now - created
    }

    pub fn items(&self) -> &[StoredItem] {
        &self.index.items
    }

    pub fn get(&self, id: u64) -> Option<&StoredItem> {
        self.index.items.iter().find(|i| i.id == id)
    }

    /// Keeps `bytes` as a new item, dated `created` (never later than the
    /// machine's clock) or now.
    pub fn put(
        &mut self,
        kind: ItemKind,
        label: &str,
        bytes: &[u8],
        created: Option<DateTime<Utc>>,
    ) -> Result<StoredItem, StoreError> {
        let created = created.map_or(self.clock_now, |c| c.min(self.clock_now));
        self.index.next_id += 1;
        let item = StoredItem {
            id: self.index.next_id,
            kind,
            label: label.to_string(),
            created,
            size: bytes.len() as u64,
        };
        let path = self.store.item_path(item.id);
        self.dirty = true;
        fsutil::write_atomically(&path, bytes, fsutil::Access::Private)
            .map_err(err("write the local store", &path))?;
        self.index.items.push(item.clone());
        Ok(item)
    }

    /// Rewrites an item's bytes, keeping its creation time. `None` when the
    /// item is gone (swept or purged): it is never brought back.
    pub fn replace(&mut self, id: u64, bytes: &[u8]) -> Result<Option<StoredItem>, StoreError> {
        let Some(position) = self.index.items.iter().position(|i| i.id == id) else {
            return Ok(None);
        };
        let path = self.store.item_path(id);
        self.dirty = true;
        fsutil::write_atomically(&path, bytes, fsutil::Access::Private)
            .map_err(err("write the local store", &path))?;
        let item = &mut self.index.items[position];
        item.size = bytes.len() as u64;
        Ok(Some(item.clone()))
    }

    /// Deletes the given items (unknown ids are ignored).
    pub fn remove(&mut self, ids: &[u64]) -> Result<usize, StoreError> {
        let before = self.index.items.len();
        for id in ids {
            if self.index.items.iter().any(|i| i.id == *id) {
                self.dirty = true;
                self.store.remove_item_file(*id)?;
            }
        }
        self.index.items.retain(|i| !ids.contains(&i.id));
        Ok(before - self.index.items.len())
    }
}

impl RetentionStore {
    /// Opens (or creates) the store at `root`. Refuses folders that are
    /// symbolic links.
    pub fn open(root: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        for dir in [
            root.to_path_buf(),
            root.join(ITEMS_DIR),
            root.join(PARTIALS_DIR),
        ] {
            fsutil::private_dir(&dir).map_err(err("use the local store", &dir))?;
        }
        let lock_path = root.join(LOCK_FILE);
        let lock_file =
            fsutil::open_lock_file(&lock_path).map_err(err("use the local store", &lock_path))?;
        let store = Self {
            root: root.to_path_buf(),
            clock,
            cache: Mutex::new(Cached {
                index: Index::default(),
                stamp: None,
            }),
            changing: Mutex::new(()),
            lock_file,
        };
        store.snapshot();
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder where exports in progress are recorded.
    pub fn partials_dir(&self) -> PathBuf {
        self.root.join(PARTIALS_DIR)
    }

    fn cache(&self) -> MutexGuard<'_, Cached> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn item_path(&self, id: u64) -> PathBuf {
        self.root.join(ITEMS_DIR).join(format!("{id}.bin"))
    }

    fn remove_item_file(&self, id: u64) -> Result<(), StoreError> {
        let path = self.item_path(id);
        fsutil::remove_if_present(&path).map_err(err("delete a stored item", &path))
    }

    /// The folders must still be the store's own (not swapped for links).
    fn check_folders(&self) -> Result<(), StoreError> {
        for dir in [self.root.clone(), self.root.join(ITEMS_DIR)] {
            let meta = fs::symlink_metadata(&dir).map_err(err("use the local store", &dir))?;
            if meta.file_type().is_symlink() || !meta.is_dir() {
                return Err(StoreError {
                    action: "use the local store",
                    source: std::io::Error::other(
                        "it is no longer a folder of its own (a symbolic link?)",
                    ),
                    path: dir,
                });
            }
        }
        Ok(())
    }

    /// The index as it is on disk now (read again only when the file changed).
    fn snapshot(&self) -> Index {
        let mut cache = self.cache();
        let path = self.root.join(INDEX_FILE);
        let stamp = FileStamp::of(&path);
        if stamp.is_none() || stamp != cache.stamp {
            let high_water = cache.index.high_water;
            cache.index = read_index(&path);
            cache.index.high_water = cache.index.high_water.max(high_water);
            cache.stamp = stamp;
        }
        cache.index.clone()
    }

    /// `max(clock, high_water)`.
    fn effective_now(&self, index: &Index) -> DateTime<Utc> {
        let now = self.clock.now();
        index.high_water.map_or(now, |hw| hw.max(now))
    }

    /// Runs `change` under the store's lock, on the index as it is on disk,
    /// then writes the index back (also when `change` failed part-way, so
    /// that what it deleted stays deleted).
    pub fn update<R, E: From<StoreError>>(
        &self,
        change: impl FnOnce(&mut Txn<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        let _changing = self.changing.lock().unwrap_or_else(|e| e.into_inner());
        self.check_folders()?;
        let lock_path = self.root.join(LOCK_FILE);
        self.lock_file
            .lock()
            .map_err(err("lock the local store", &lock_path))?;
        let _unlock = Unlock(&self.lock_file);
        let index_path = self.root.join(INDEX_FILE);
        let mut index = read_index(&index_path);
        let on_disk_high_water = index.high_water;
        // Time never moves backwards, whichever process saw the latest.
        index.high_water = index.high_water.max(self.cache().index.high_water);
        let clock_now = self.clock.now();
        let now = index.high_water.map_or(clock_now, |hw| hw.max(clock_now));
        index.high_water = Some(now);
        let mut txn = Txn {
            store: self,
            index: &mut index,
            now,
            clock_now,
            dirty: false,
        };
        let result = change(&mut txn);
        // A sweep that deleted nothing writes the index only to move the
        // high-water mark on, every few minutes (not a disk write a minute).
        let stale_mark = on_disk_high_water.is_none_or(|hw| now - hw >= TimeDelta::minutes(10));
        let saved = if txn.dirty || stale_mark {
            self.save_index(&index)
        } else {
            Ok(())
        };
        let mut cache = self.cache();
        cache.stamp = FileStamp::of(&index_path);
        cache.index = index;
        drop(cache);
        let value = result?;
        saved?;
        Ok(value)
    }

    fn save_index(&self, index: &Index) -> Result<(), StoreError> {
        let path = self.root.join(INDEX_FILE);
        let text = ron::to_string(index).map_err(|e| StoreError {
            action: "write the local store's index",
            source: std::io::Error::other(e.to_string()),
            path: path.clone(),
        })?;
        fsutil::write_atomically(&path, text.as_bytes(), fsutil::Access::Private)
            .map_err(err("write the local store", &path))
    }

    /// Keeps `bytes` as a new item, dated now.
    pub fn put(&self, kind: ItemKind, label: &str, bytes: &[u8]) -> Result<StoredItem, StoreError> {
        self.update(|tx| tx.put(kind, label, bytes, None))
    }

    pub fn read(&self, id: u64) -> Result<Vec<u8>, StoreError> {
        let path = self.item_path(id);
        fs::read(&path).map_err(err("read a stored item", &path))
    }

    pub fn list(&self) -> Vec<StoredItem> {
        self.snapshot().items
    }

    pub fn contains(&self, id: u64) -> bool {
        self.snapshot().items.iter().any(|i| i.id == id)
    }

    pub fn stats(&self) -> StoreStats {
        let index = self.snapshot();
        let now = self.effective_now(&index);
        let mut kinds: BTreeMap<ItemKind, KindStats> = BTreeMap::new();
        for item in &index.items {
            let entry = kinds.entry(item.kind).or_insert(KindStats {
                kind: item.kind,
                items: 0,
                bytes: 0,
                oldest_age: TimeDelta::zero(),
                oldest_created: item.created,
            });
            entry.items += 1;
            entry.bytes += item.size;
            entry.oldest_created = entry.oldest_created.min(item.created);
            entry.oldest_age = now - entry.oldest_created;
        }
        StoreStats {
            items: index.items.len(),
            bytes: index.items.iter().map(|i| i.size).sum(),
            oldest_age: index.items.iter().map(|i| now - i.created).max(),
            kinds: kinds.into_values().collect(),
            now: Some(now),
        }
    }

    /// Deletes what the user's choice does not allow to stay, then whatever
    /// the store's folders hold that no index entry accounts for (a crash
    /// between writing and recording), and partial exports whose process
    /// died.
    pub fn sweep(&self, keep: Keep) -> Result<SweepReport, StoreError> {
        self.update(|tx| {
            let mut doomed: Vec<u64> = Vec::new();
            match keep {
                Keep::UpTo(cap_bytes) => {
                    let mut total: u64 = tx.items().iter().map(|i| i.size).sum();
                    let mut by_age: Vec<&StoredItem> = tx.items().iter().collect();
                    by_age.sort_by_key(|i| (i.created, i.id));
                    for item in by_age {
                        if total <= cap_bytes {
                            break;
                        }
                        total -= item.size;
                        doomed.push(item.id);
                    }
                }
                Keep::YoungerThan(max_age) => doomed.extend(
                    tx.items()
                        .iter()
                        .filter(|i| tx.age(i.created) >= max_age)
                        .map(|i| i.id),
                ),
            }
            let mut report = SweepReport::default();
            for item in tx.items().iter().filter(|i| doomed.contains(&i.id)) {
                *report.removed_kinds.entry(item.kind).or_default() += 1;
            }
            report.removed = tx.remove(&doomed)?;
            report.kept = tx.items().len();
            report.strays = self.remove_strays(tx.items())?;
            report.partials = crate::partials::clean(&self.partials_dir());
            Ok(report)
        })
    }

    /// The items of one kind, oldest first.
    pub fn list_kind(&self, kind: ItemKind) -> Vec<StoredItem> {
        let mut items: Vec<StoredItem> = self
            .snapshot()
            .items
            .into_iter()
            .filter(|i| i.kind == kind)
            .collect();
        items.sort_by_key(|i| (i.created, i.id));
        items
    }

    /// Deletes the given items (unknown ids are ignored).
    pub fn remove(&self, ids: &[u64]) -> Result<usize, StoreError> {
        self.update(|tx| tx.remove(ids))
    }

    /// Deletes every item of one kind.
    pub fn purge_kind(&self, kind: ItemKind) -> Result<usize, StoreError> {
        self.update(|tx| {
            let ids: Vec<u64> = tx
                .items()
                .iter()
                .filter(|i| i.kind == kind)
                .map(|i| i.id)
                .collect();
            tx.remove(&ids)
        })
    }

    /// Deletes everything in the store.
    pub fn purge_all(&self) -> Result<usize, StoreError> {
        self.update(|tx| {
            let ids: Vec<u64> = tx.items().iter().map(|i| i.id).collect();
            let removed = tx.remove(&ids)?;
            self.remove_strays(tx.items())?;
            crate::partials::clean(&self.partials_dir());
            Ok(removed)
        })
    }

    /// Deletes the store's own files that `items` does not account for:
    /// `<id>.bin` files with no entry and temporary files (`.tmp-*`) in the
    /// store's folders. Runs under the lock, so no other writer is midway.
    fn remove_strays(&self, items: &[StoredItem]) -> Result<usize, StoreError> {
        let mut removed = 0;
        for dir in [self.root.clone(), self.root.join(ITEMS_DIR)] {
            let entries = fs::read_dir(&dir).map_err(err("list the local store", &dir))?;
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else {
                    continue;
                };
                let ours = if name.starts_with(TEMP_PREFIX) {
                    true
                } else if dir.ends_with(ITEMS_DIR) {
                    name.strip_suffix(".bin")
                        .and_then(|id| id.parse::<u64>().ok())
                        .is_some_and(|id| !items.iter().any(|i| i.id == id))
                } else {
                    false
                };
                let is_file = entry.file_type().is_ok_and(|t| t.is_file());
                if ours && is_file {
                    let path = entry.path();
                    fsutil::remove_if_present(&path).map_err(err("delete a stored item", &path))?;
                    removed += 1;
                }
            }
        }
        if removed > 0 {
            let items_dir = self.root.join(ITEMS_DIR);
            fsutil::sync_dir(&items_dir).map_err(err("write the local store", &items_dir))?;
        }
        Ok(removed)
    }
}

/// Releases the store's lock when a change is done (or panicked).
struct Unlock<'a>(&'a File);

impl Drop for Unlock<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

fn read_index(path: &Path) -> Index {
    // An unreadable index loses track of items: start empty, and the next
    // sweep removes the files it no longer knows (never keeps them).
    crate::limits::read_settings_text(path)
        .ok()
        .and_then(|t| ron::from_str(&t).ok())
        .unwrap_or_default()
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

    fn opted_out() -> Keep {
        Keep::for_consent(false, u64::MAX)
    }

    fn items_on_disk(dir: &Path) -> usize {
        fs::read_dir(dir.join(ITEMS_DIR)).unwrap().count()
    }

    #[test]
    fn a_sweep_deletes_what_would_pass_24_hours_before_the_next_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = store(dir.path());
        store.put(ItemKind::Mask, "cat.jpg", b"mask").unwrap();
        // The hourly sweep at 22 h 54 min keeps it: the next one (at most
        // 1 h 05 min later) comes before 24 h.
        clock.advance(TimeDelta::minutes(22 * 60 + 54));
        let report = store.sweep(opted_out()).unwrap();
        assert_eq!((report.removed, report.kept), (0, 1));
        // At 22 h 55 min the next sweep could come after 24 h: delete now.
        clock.advance(TimeDelta::minutes(1));
        let report = store.sweep(opted_out()).unwrap();
        assert_eq!((report.removed, report.kept), (1, 0));
        assert_eq!(report.removed_kinds.get(&ItemKind::Mask), Some(&1));
        assert_eq!(items_on_disk(dir.path()), 0);
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
        assert_eq!(store.sweep(Keep::UpTo(1000)).unwrap().removed, 0);
        assert_eq!(store.sweep(Keep::UpTo(150)).unwrap().removed, 1);
        assert_eq!(store.list()[0].label, "new.jpg");
    }

    #[test]
    fn a_clock_set_back_cannot_make_items_younger() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = store(dir.path());
        store.put(ItemKind::Thumbnail, "a.jpg", b"x").unwrap();
        clock.advance(TimeDelta::hours(20));
        assert_eq!(store.sweep(opted_out()).unwrap().removed, 0);
        // The clock jumps back a week and stays there: ages are counted from
        // the latest time seen, so the item still ages with real time...
        clock.advance(TimeDelta::days(-7));
        clock.advance(TimeDelta::hours(2));
        assert_eq!(store.stats().oldest_age, Some(TimeDelta::hours(20)));
        // ...and an item written while the clock is behind is dated by that
        // clock, so it counts as a week old at once.
        store.put(ItemKind::Mask, "b.jpg", b"y").unwrap();
        assert_eq!(store.sweep(opted_out()).unwrap().removed, 1);
        assert_eq!(store.list()[0].label, "a.jpg");
        clock.set(t0() + TimeDelta::hours(23));
        assert_eq!(store.sweep(opted_out()).unwrap().removed, 1);
    }

    #[test]
    fn a_clock_that_ran_ahead_can_only_shorten_retention() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = store(dir.path());
        // Some process ran with the clock 25 hours ahead...
        clock.advance(TimeDelta::hours(25));
        store.sweep(opted_out()).unwrap();
        // ...then the clock is right again and the user works.
        clock.set(t0());
        let item = store.put(ItemKind::Mask, "c.jpg", b"z").unwrap();
        assert_eq!(item.created, t0(), "dated by the machine's clock");
        // Counted from the high-water mark, it is already 25 h old.
        assert_eq!(store.sweep(opted_out()).unwrap().removed, 1);
    }

    #[test]
    fn the_high_water_mark_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, clock) = store(dir.path());
            store.put(ItemKind::Log, "log", b"x").unwrap();
            clock.advance(TimeDelta::hours(22));
            store.sweep(opted_out()).unwrap();
        }
        // A new process whose clock reads the original time.
        let clock = Arc::new(ManualClock::new(t0() + TimeDelta::hours(1)));
        let store = RetentionStore::open(dir.path(), clock.clone()).unwrap();
        assert_eq!(store.stats().oldest_age, Some(TimeDelta::hours(22)));
        assert_eq!(store.sweep(opted_out()).unwrap().removed, 0);
        clock.set(t0() + TimeDelta::hours(23));
        assert_eq!(store.sweep(opted_out()).unwrap().removed, 1);
    }

    #[test]
    fn strays_temporaries_and_purge_but_nothing_the_store_did_not_make() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = store(dir.path());
        store.put(ItemKind::Workspace, "w", b"x").unwrap();
        fs::write(dir.path().join(ITEMS_DIR).join("999.bin"), b"orphan").unwrap();
        fs::write(dir.path().join(ITEMS_DIR).join(".tmp-abc"), b"torn").unwrap();
        fs::write(dir.path().join(".tmp-index"), b"torn index").unwrap();
        fs::write(dir.path().join(ITEMS_DIR).join("notes.txt"), b"not ours").unwrap();
        let report = store.sweep(opted_out()).unwrap();
        assert_eq!(report.strays, 3);
        assert!(!dir.path().join(".tmp-index").exists());
        assert!(dir.path().join(ITEMS_DIR).join("notes.txt").exists());
        assert_eq!(store.purge_all().unwrap(), 1);
        assert_eq!(
            items_on_disk(dir.path()),
            1,
            "only the file it did not make"
        );
        assert_eq!(store.stats().items, 0);
    }

    #[test]
    fn replace_keeps_the_date_and_never_brings_an_item_back() {
        let dir = tempfile::tempdir().unwrap();
        let (store, clock) = store(dir.path());
        let item = store.put(ItemKind::Workspace, "w", b"one").unwrap();
        clock.advance(TimeDelta::hours(5));
        let again = store
            .update(|tx| tx.replace(item.id, b"two"))
            .unwrap()
            .unwrap();
        assert_eq!(again.created, item.created);
        assert_eq!(store.read(item.id).unwrap(), b"two");
        store.purge_all().unwrap();
        assert_eq!(
            store.update(|tx| tx.replace(item.id, b"three")).unwrap(),
            None
        );
        assert_eq!(items_on_disk(dir.path()), 0);
    }

    #[cfg(unix)]
    #[test]
    fn folders_are_private_and_symlinked_folders_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let (store, _) = store(&root);
        let item = store.put(ItemKind::Mask, "m", b"x").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join(ITEMS_DIR)), 0o700);
        assert_eq!(mode(&root.join(INDEX_FILE)), 0o600);
        assert_eq!(mode(&store.item_path(item.id)), 0o600);

        // The items folder swapped for a link to elsewhere: refused, and
        // nothing in the link's target is touched.
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::write(elsewhere.join("1.bin"), b"someone else's").unwrap();
        fs::write(elsewhere.join("7.bin"), b"someone else's").unwrap();
        fs::rename(root.join(ITEMS_DIR), dir.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.join(ITEMS_DIR)).unwrap();
        assert!(store.purge_all().is_err());
        assert!(store.sweep(opted_out()).is_err());
        assert!(elsewhere.join("1.bin").exists() && elsewhere.join("7.bin").exists());
        let reopened = RetentionStore::open(&root, Arc::new(SystemClock));
        assert!(reopened.unwrap_err().to_string().contains("symbolic link"));

        let linked_root = dir.path().join("linked-store");
        std::os::unix::fs::symlink(&elsewhere, &linked_root).unwrap();
        assert!(RetentionStore::open(&linked_root, Arc::new(SystemClock)).is_err());
    }

    #[test]
    fn two_stores_on_one_folder_never_share_an_id_or_lose_an_item() {
        let dir = tempfile::tempdir().unwrap();
        let a = Arc::new(RetentionStore::open(dir.path(), Arc::new(SystemClock)).unwrap());
        let b = Arc::new(RetentionStore::open(dir.path(), Arc::new(SystemClock)).unwrap());
        let writers: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .enumerate()
            .map(|(n, store)| {
                std::thread::spawn(move || {
                    for i in 0..50 {
                        store
                            .put(ItemKind::Mask, &format!("{n}-{i}"), &[n as u8; 10])
                            .unwrap();
                        if i % 10 == 0 {
                            store.sweep(opted_out()).unwrap();
                        }
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        let items = a.list();
        assert_eq!(items.len(), 100);
        let mut ids: Vec<u64> = items.iter().map(|i| i.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), 100);
        for item in &items {
            let n: u8 = item.label[..1].parse().unwrap();
            assert_eq!(a.read(item.id).unwrap(), vec![n; 10]);
        }
        assert_eq!(items_on_disk(dir.path()), 100);
    }

    #[test]
    fn ages_read_like_a_status_line() {
        assert_eq!(format_age(TimeDelta::minutes(125)), "2 h 05 min");
        assert_eq!(format_age(TimeDelta::minutes(3)), "3 min");
        assert_eq!(format_age(TimeDelta::minutes(28 * 60)), "1 d 4 h");
    }

    #[test]
    fn reading_the_store_never_waits_for_a_change_that_is_writing_items() {
        use crossbeam_channel::bounded;
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let (store, _clock) = store(dir.path());
        let store = Arc::new(store);
        store.put(ItemKind::Mask, "a.jpg", b"one").unwrap();
        let (inside_tx, inside_rx) = bounded::<()>(0);
        let (release_tx, release_rx) = bounded::<()>(0);
        let writer = {
            let store = store.clone();
            std::thread::spawn(move || {
                store
                    .update(|tx| -> Result<(), StoreError> {
                        tx.put(ItemKind::Mask, "b.jpg", b"two", None)?;
                        // A large item still being written.
                        inside_tx.send(()).unwrap();
                        release_rx.recv().unwrap();
                        Ok(())
                    })
                    .unwrap();
            })
        };
        inside_rx.recv().unwrap();
        let (seen_tx, seen_rx) = bounded(1);
        let reader = {
            let store = store.clone();
            std::thread::spawn(move || {
                seen_tx
                    .send((store.list().len(), store.stats().items))
                    .unwrap();
            })
        };
        let seen = seen_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a read waited for the change to finish");
        // The index as it was before the change.
        assert_eq!(seen, (1, 1));
        release_tx.send(()).unwrap();
        writer.join().unwrap();
        reader.join().unwrap();
        assert_eq!(store.list().len(), 2);
    }
}
