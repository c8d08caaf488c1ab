//! Recent work, kept in the retention store so that reopening the app brings
//! back the images of the last day (longer only with opt-in): one workspace
//! entry per image (its name, path and brush strokes), its mask, and the
//! pixels of a paste (which has no file).
//!
//! Every item of an image carries the date the image was first kept, also
//! when its mask or strokes are rewritten later, so the whole image leaves
//! the disk together, a day after it was opened, however long the app runs.
//! Once an image's entry is gone (swept or purged), nothing of it is ever
//! written again.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use image::{GrayImage, RgbaImage};
use serde::{Deserialize, Serialize};

use super::store::{ItemKind, RetentionStore, StoreError, StoredItem};
use crate::engine::encode::{plain_png_gray, plain_png_rgba};
use crate::engine::refine::Stroke;

/// Version 2: one entry per image, paths as bytes.
const ENTRY_VERSION: u32 = 2;

/// One open image as the next start finds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedResult {
    pub name: String,
    /// The file it came from; `None` for a paste. Kept as the path's bytes,
    /// so any file name the system allows can be kept.
    #[serde(with = "path_bytes")]
    pub path: Option<PathBuf>,
    /// The stored pixels of a paste.
    pub original_item: Option<u64>,
    pub mask_item: u64,
    pub model: String,
    /// The user's brush strokes on the mask (image pixels), oldest first.
    #[serde(default)]
    pub strokes: Vec<Stroke>,
}

impl SavedResult {
    fn items(&self) -> Vec<u64> {
        let mut ids = vec![self.mask_item];
        ids.extend(self.original_item);
        ids
    }
}

/// An image kept in the store: its entry's id and date.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    pub entry_item: u64,
    pub created: DateTime<Utc>,
    pub result: SavedResult,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    version: u32,
    result: SavedResult,
}

#[derive(Debug, thiserror::Error)]
pub enum RecentError {
    #[error("cannot keep the result of {name} ({detail})")]
    Encode { name: String, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn entry_bytes(result: &SavedResult) -> Result<Vec<u8>, RecentError> {
    let entry = Entry {
        version: ENTRY_VERSION,
        result: result.clone(),
    };
    ron::to_string(&entry)
        .map(String::into_bytes)
        .map_err(|e| RecentError::Encode {
            name: result.name.clone(),
            detail: e.to_string(),
        })
}

/// A finished result of one image, as the app has it.
pub struct NewResult<'a> {
    pub name: &'a str,
    pub path: Option<PathBuf>,
    pub original: &'a RgbaImage,
    pub mask: &'a GrayImage,
    pub model: &'a str,
    pub strokes: &'a [Stroke],
}

/// Keeps a new result of an image: its mask, the pixels of a paste, and its
/// workspace entry. `kept` is what is already stored of the same image
/// (another model's result): its date carries over, and when it is gone
/// from the store nothing is written (`Ok(None)`).
pub fn save_result(
    store: &RetentionStore,
    new: NewResult<'_>,
    kept: Option<&Kept>,
) -> Result<Option<Kept>, RecentError> {
    let NewResult {
        name,
        path,
        original,
        mask,
        model,
        strokes,
    } = new;
    let encode = |e: image::ImageError| RecentError::Encode {
        name: name.to_string(),
        detail: e.to_string(),
    };
    // Encoded before taking the store's lock.
    let mask_png = plain_png_gray(mask).map_err(encode)?;
    let reuse_original = kept.and_then(|k| k.result.original_item);
    let original_png = match (&path, reuse_original) {
        (None, None) => Some(plain_png_rgba(original).map_err(encode)?),
        _ => None,
    };
    store.update(|tx| {
        if let Some(k) = kept
            && tx.get(k.entry_item).is_none()
        {
            return Ok(None);
        }
        let created = kept.map(|k| k.created);
        let mask_item = tx.put(ItemKind::Mask, name, &mask_png, created)?;
        let created = created.unwrap_or(mask_item.created);
        let original_item = match (reuse_original, &original_png) {
            (Some(id), _) => Some(id),
            (None, Some(png)) => Some(tx.put(ItemKind::Original, name, png, Some(created))?.id),
            (None, None) => None,
        };
        let result = SavedResult {
            name: name.to_string(),
            path,
            original_item,
            mask_item: mask_item.id,
            model: model.to_string(),
            strokes: strokes.to_vec(),
        };
        let bytes = entry_bytes(&result)?;
        let entry: StoredItem = match kept {
            Some(k) => {
                // Present: checked above, under the same lock.
                let Some(replaced) = tx.replace(k.entry_item, &bytes)? else {
                    return Ok(None);
                };
                let stale: Vec<u64> = k
                    .result
                    .items()
                    .into_iter()
                    .filter(|id| Some(*id) != original_item)
                    .collect();
                tx.remove(&stale)?;
                replaced
            }
            None => tx.put(ItemKind::Workspace, name, &bytes, Some(created))?,
        };
        Ok(Some(Kept {
            entry_item: entry.id,
            created: entry.created,
            result,
        }))
    })
}

/// Rewrites an image's strokes in its entry (same date). `Ok(None)` when
/// the entry is gone: nothing is written.
pub fn save_strokes(
    store: &RetentionStore,
    kept: &Kept,
    strokes: &[Stroke],
) -> Result<Option<Kept>, RecentError> {
    let mut result = kept.result.clone();
    result.strokes = strokes.to_vec();
    let bytes = entry_bytes(&result)?;
    store.update(|tx| {
        Ok(tx.replace(kept.entry_item, &bytes)?.map(|entry| Kept {
            entry_item: entry.id,
            created: entry.created,
            result,
        }))
    })
}

/// Deletes everything kept of one image.
pub fn forget(store: &RetentionStore, kept: &Kept) -> Result<(), StoreError> {
    let mut ids = kept.result.items();
    ids.push(kept.entry_item);
    store.remove(&ids).map(|_| ())
}

/// The images still kept (those whose items were swept are left out),
/// in the order they were first kept.
pub fn load_workspace(store: &RetentionStore) -> Vec<Kept> {
    let stored: Vec<u64> = store.list().iter().map(|i| i.id).collect();
    store
        .list_kind(ItemKind::Workspace)
        .into_iter()
        .filter_map(|item| {
            let bytes = store.read(item.id).ok()?;
            let entry: Entry = ron::from_str(std::str::from_utf8(&bytes).ok()?).ok()?;
            (entry.version == ENTRY_VERSION
                && entry.result.items().iter().all(|id| stored.contains(id)))
            .then_some(Kept {
                entry_item: item.id,
                created: item.created,
                result: entry.result,
            })
        })
        .collect()
}

/// A stored item decoded under the same limits as any image file: the
/// store is a folder on disk that another program could have written to.
fn load_image(store: &RetentionStore, item: u64) -> Result<RgbaImage, String> {
    let bytes = store.read(item).map_err(|e| e.to_string())?;
    let name = std::path::PathBuf::from(format!("stored item {item}"));
    crate::engine::decode::decode_bytes(&bytes, &name, Default::default())
        .map(|decoded| decoded.rgba)
        .map_err(|e| format!("a stored image is damaged ({e})"))
}

pub fn load_mask(store: &RetentionStore, item: u64) -> Result<GrayImage, String> {
    let rgba = load_image(store, item)?;
    let (w, h) = rgba.dimensions();
    Ok(GrayImage::from_fn(w, h, |x, y| {
        image::Luma([rgba.get_pixel(x, y)[0]])
    }))
}

pub fn load_original(store: &RetentionStore, item: u64) -> Result<RgbaImage, String> {
    load_image(store, item)
}

/// A path as text, or as its bytes (Unix) / UTF-16 units (Windows) when it
/// is not valid Unicode, so any name the system allows survives.
mod path_bytes {
    use std::path::PathBuf;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Text when the path is valid Unicode (readable, and what a scan of
    /// the disk for the user's names finds); the raw units otherwise.
    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        #[cfg(unix)]
        Bytes(Vec<u8>),
        #[cfg(windows)]
        Wide(Vec<u16>),
    }

    fn to_raw(path: &std::path::Path) -> Raw {
        if let Some(text) = path.to_str() {
            return Raw::Text(text.to_string());
        }
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            Raw::Bytes(path.as_os_str().as_bytes().to_vec())
        }
        #[cfg(windows)]
        {
            use std::os::windows::ffi::OsStrExt;
            Raw::Wide(path.as_os_str().encode_wide().collect())
        }
        #[cfg(not(any(unix, windows)))]
        {
            Raw::Text(path.to_string_lossy().into_owned())
        }
    }

    fn from_raw(raw: Raw) -> PathBuf {
        match raw {
            Raw::Text(text) => PathBuf::from(text),
            #[cfg(unix)]
            Raw::Bytes(bytes) => {
                use std::os::unix::ffi::OsStringExt;
                PathBuf::from(std::ffi::OsString::from_vec(bytes))
            }
            #[cfg(windows)]
            Raw::Wide(units) => {
                use std::os::windows::ffi::OsStringExt;
                PathBuf::from(std::ffi::OsString::from_wide(&units))
            }
        }
    }

    pub fn serialize<S: Serializer>(path: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        path.as_deref().map(to_raw).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        Ok(Option::<Raw>::deserialize(d)?.map(from_raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::store::{Keep, ManualClock, sweep_age};
    use chrono::TimeDelta;
    use std::sync::Arc;

    fn pixels() -> (RgbaImage, GrayImage) {
        (
            RgbaImage::from_pixel(3, 2, image::Rgba([9, 8, 7, 255])),
            GrayImage::from_pixel(3, 2, image::Luma([200])),
        )
    }

    #[test]
    fn a_workspace_comes_back_until_its_items_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new("2026-11-29T10:00:00Z".parse().unwrap()));
        let store = RetentionStore::open(dir.path(), clock.clone()).unwrap();
        let (image, mask) = pixels();
        let new = |name, path: Option<PathBuf>, model| NewResult {
            name,
            path,
            original: &image,
            mask: &mask,
            model,
            strokes: &[],
        };
        let file = save_result(
            &store,
            new("cat.jpg", Some("/photos/cat.jpg".into()), "m"),
            None,
        )
        .unwrap()
        .unwrap();
        let pasted = save_result(&store, new("Pasted image", None, "m"), None)
            .unwrap()
            .unwrap();
        assert!(file.result.original_item.is_none(), "a file is not copied");
        assert_eq!(store.list_kind(ItemKind::Workspace).len(), 2);

        let back = load_workspace(&store);
        assert_eq!(back, vec![file.clone(), pasted.clone()]);
        assert_eq!(load_mask(&store, back[0].result.mask_item).unwrap(), mask);
        assert_eq!(
            load_original(&store, back[1].result.original_item.unwrap()).unwrap(),
            image
        );

        // Re-processed hours later (another model): the mask is replaced, the
        // pasted pixels kept, and the date is still the first one.
        clock.advance(TimeDelta::hours(20));
        let again = save_result(&store, new("Pasted image", None, "m2"), Some(&pasted))
            .unwrap()
            .unwrap();
        assert_eq!(again.result.original_item, pasted.result.original_item);
        assert_eq!(again.created, pasted.created);
        assert!(store.read(pasted.result.mask_item).is_err());
        assert!(store.list().iter().all(|i| i.created == pasted.created));

        // A day after the images were opened, all of it is gone...
        clock.advance(sweep_age() - TimeDelta::hours(20));
        store.sweep(Keep::for_consent(false, u64::MAX)).unwrap();
        assert!(load_workspace(&store).is_empty());
        assert_eq!(store.stats().items, 0);
        // ...and is never written again, whatever the app still holds.
        let stroke = Stroke {
            mode: crate::engine::refine::BrushMode::Erase,
            radius: 3.0,
            hardness: 1.0,
            points: vec![[1.0, 1.0]],
        };
        assert_eq!(save_strokes(&store, &file, &[stroke]).unwrap(), None);
        assert_eq!(
            save_result(&store, new("cat.jpg", None, "m3"), Some(&file)).unwrap(),
            None
        );
        assert_eq!(store.stats().items, 0);
    }

    #[cfg(unix)]
    #[test]
    fn a_file_name_that_is_not_utf8_is_kept_and_comes_back() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let store =
            RetentionStore::open(dir.path(), Arc::new(crate::privacy::store::SystemClock)).unwrap();
        let (image, mask) = pixels();
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(b"/photos/caf\xe9.jpg"));
        let new = NewResult {
            name: "caf\u{fffd}.jpg",
            path: Some(path.clone()),
            original: &image,
            mask: &mask,
            model: "m",
            strokes: &[],
        };
        save_result(&store, new, None).unwrap().unwrap();
        let back = load_workspace(&store);
        assert_eq!(back[0].result.path.as_ref(), Some(&path));
    }
}
