//! Recent work, kept in the retention store so that reopening the app brings
//! back the images of the last 24 hours (longer only with opt-in): each
//! result's mask, the pixels of pasted images (which have no file), and a
//! small workspace list naming them. Being in the store, all of it obeys the
//! same sweeps as everything else.

use std::path::PathBuf;

use image::{GrayImage, RgbaImage};
use serde::{Deserialize, Serialize};

use super::store::{ItemKind, RetentionStore, StoreError};
use crate::engine::encode::{plain_png_gray, plain_png_rgba};

const WORKSPACE_VERSION: u32 = 1;

/// One finished image as the next start finds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedResult {
    pub name: String,
    /// The file it came from; `None` for a paste.
    pub path: Option<PathBuf>,
    /// The stored pixels of a paste.
    pub original_item: Option<u64>,
    pub mask_item: u64,
    pub model: String,
    /// The user's brush strokes on the mask (image pixels), oldest first.
    #[serde(default)]
    pub strokes: Vec<crate::engine::refine::Stroke>,
}

impl SavedResult {
    fn items(&self) -> Vec<u64> {
        let mut ids = vec![self.mask_item];
        ids.extend(self.original_item);
        ids
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SavedWorkspace {
    version: u32,
    results: Vec<SavedResult>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecentError {
    #[error("cannot keep the result of {name} ({detail})")]
    Encode { name: String, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Keeps one result: its mask, and the pixels too when there is no file.
/// `replaces` is the same image's previous result (another model), whose
/// items are deleted.
pub fn save_result(
    store: &RetentionStore,
    name: &str,
    path: Option<PathBuf>,
    original: &RgbaImage,
    mask: &GrayImage,
    model: &str,
    replaces: Option<&SavedResult>,
) -> Result<SavedResult, RecentError> {
    let encode = |e: image::ImageError| RecentError::Encode {
        name: name.to_string(),
        detail: e.to_string(),
    };
    let mask_item = store
        .put(ItemKind::Mask, name, &plain_png_gray(mask).map_err(encode)?)?
        .id;
    let original_item = match (&path, replaces.and_then(|r| r.original_item)) {
        (Some(_), _) => None,
        // A paste re-processed: its pixels are already stored.
        (None, Some(kept)) => Some(kept),
        (None, None) => Some(
            store
                .put(
                    ItemKind::Original,
                    name,
                    &plain_png_rgba(original).map_err(encode)?,
                )?
                .id,
        ),
    };
    if let Some(old) = replaces {
        let stale: Vec<u64> = old
            .items()
            .into_iter()
            .filter(|id| Some(*id) != original_item)
            .collect();
        store.remove(&stale)?;
    }
    Ok(SavedResult {
        name: name.to_string(),
        path,
        original_item,
        mask_item,
        model: model.to_string(),
        // Strokes belong to the image, whichever model made the mask.
        strokes: replaces.map(|r| r.strokes.clone()).unwrap_or_default(),
    })
}

/// Records which results make up the workspace (replacing the last list).
pub fn save_workspace(store: &RetentionStore, results: &[SavedResult]) -> Result<(), StoreError> {
    let old: Vec<u64> = store
        .list_kind(ItemKind::Workspace)
        .iter()
        .map(|i| i.id)
        .collect();
    let list = SavedWorkspace {
        version: WORKSPACE_VERSION,
        results: results.to_vec(),
    };
    let text = ron::to_string(&list).expect("workspace always serialises");
    store.put(ItemKind::Workspace, "recent work", text.as_bytes())?;
    store.remove(&old)?;
    Ok(())
}

/// The results of the last workspace whose mask is still stored (the
/// others were swept).
pub fn load_workspace(store: &RetentionStore) -> Vec<SavedResult> {
    let Some(latest) = store.list_kind(ItemKind::Workspace).pop() else {
        return Vec::new();
    };
    let list: SavedWorkspace = store
        .read(latest.id)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| ron::from_str(&text).ok())
        .unwrap_or_default();
    if list.version > WORKSPACE_VERSION {
        return Vec::new();
    }
    let stored: Vec<u64> = store.list().iter().map(|i| i.id).collect();
    list.results
        .into_iter()
        .filter(|r| r.items().iter().all(|id| stored.contains(id)))
        .collect()
}

pub fn load_mask(store: &RetentionStore, item: u64) -> Result<GrayImage, String> {
    let bytes = store.read(item).map_err(|e| e.to_string())?;
    image::load_from_memory(&bytes)
        .map(|i| i.to_luma8())
        .map_err(|e| format!("a stored mask is damaged ({e})"))
}

pub fn load_original(store: &RetentionStore, item: u64) -> Result<RgbaImage, String> {
    let bytes = store.read(item).map_err(|e| e.to_string())?;
    image::load_from_memory(&bytes)
        .map(|i| i.to_rgba8())
        .map_err(|e| format!("a stored image is damaged ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::store::ManualClock;
    use chrono::TimeDelta;
    use std::sync::Arc;

    #[test]
    fn a_workspace_comes_back_until_its_items_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new("2026-11-29T10:00:00Z".parse().unwrap()));
        let store = RetentionStore::open(dir.path(), clock.clone()).unwrap();
        let image = RgbaImage::from_pixel(3, 2, image::Rgba([9, 8, 7, 255]));
        let mask = GrayImage::from_pixel(3, 2, image::Luma([200]));
        let file = save_result(
            &store,
            "cat.jpg",
            Some("/photos/cat.jpg".into()),
            &image,
            &mask,
            "m",
            None,
        )
        .unwrap();
        let pasted = save_result(&store, "Pasted image", None, &image, &mask, "m", None).unwrap();
        assert!(file.original_item.is_none(), "a file is not copied");
        save_workspace(&store, &[file.clone(), pasted.clone()]).unwrap();
        save_workspace(&store, &[file.clone(), pasted.clone()]).unwrap();
        assert_eq!(store.list_kind(ItemKind::Workspace).len(), 1);

        let back = load_workspace(&store);
        assert_eq!(back, vec![file.clone(), pasted.clone()]);
        assert_eq!(load_mask(&store, back[0].mask_item).unwrap(), mask);
        assert_eq!(
            load_original(&store, back[1].original_item.unwrap()).unwrap(),
            image
        );

        // Re-processing replaces the mask and keeps the pasted pixels.
        let again = save_result(
            &store,
            "Pasted image",
            None,
            &image,
            &mask,
            "m2",
            Some(&pasted),
        )
        .unwrap();
        assert_eq!(again.original_item, pasted.original_item);
        assert!(store.read(pasted.mask_item).is_err());

        clock.advance(TimeDelta::hours(25));
        store.sweep(false, u64::MAX).unwrap();
        assert!(load_workspace(&store).is_empty());
        assert_eq!(store.stats().items, 0);
    }
}
