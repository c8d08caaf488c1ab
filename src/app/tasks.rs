//! Short background work started by commands (an export, a copy, a preview
//! recompute, loading a background picture) and applying what it reports.
//! Each runs on a thread of its own, sends one [`TaskResult`] on the app's
//! bounded channel and wakes the window; nothing here blocks the UI thread
//! on pixels.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::{GrayImage, RgbaImage};

use super::dialogs::{DialogKind, DialogPurpose, DialogRequest};
use super::editor;
use super::worker::ImageId;
use super::{Background, DesktopApp, Notice};
use crate::composite::export::{GpuTarget, export};
use crate::engine::decode::{DecodeLimits, decode_file};
use crate::engine::encode::write_output;
use crate::engine::finish;

/// What a short background task reports.
pub(super) enum TaskResult {
    Notice(Notice),
    /// A result was exported or copied: the user's final version, with the
    /// final mask the task made (at the photo's size), so nothing is
    /// computed again on the UI thread.
    Delivered {
        id: ImageId,
        final_mask: Arc<GrayImage>,
    },
    Picture(Result<RgbaImage, String>),
    /// Every preset, read again after one was saved.
    Presets(Vec<crate::presets::Preset>),
    /// The finished cut-out to put on the clipboard.
    CopyReady {
        id: ImageId,
        result: Result<(RgbaImage, Arc<GrayImage>), String>,
    },
    /// A recomputed preview mask (strokes and edge settings) for an item,
    /// valid if the item's mask has not changed since `version`.
    PreviewMask {
        id: ImageId,
        version: u64,
        mask: GrayImage,
        finished: Option<(RgbaImage, GrayImage)>,
    },
}

impl DesktopApp {
    /// Runs `task` on a thread of its own; its result wakes the window.
    pub(super) fn spawn_task(&self, task: impl FnOnce() -> Vec<TaskResult> + Send + 'static) {
        let (tx, ctx) = (self.tasks_tx.clone(), self.ctx.clone());
        std::thread::spawn(move || {
            for result in task() {
                // The app is gone (closing): nothing to report to.
                let _ = tx.send(result);
            }
            ctx.request_repaint();
        });
    }

    /// Decodes `path` off the UI thread and makes it the background.
    pub fn set_background_picture(&self, path: PathBuf) {
        self.spawn_task(move || {
            let result = decode_file(&path, DecodeLimits::default())
                .map(|d| d.rgba)
                .map_err(|e| e.to_string());
            vec![TaskResult::Picture(result)]
        });
    }

    /// Asks where to export the selected result.
    pub(super) fn export_dialog(&mut self) {
        let Some(item) = self.workspace.selected() else {
            return;
        };
        let stem = Path::new(&item.name)
            .file_stem()
            .map_or("cutout".into(), |s| s.to_string_lossy().into_owned());
        let file_name = format!("{stem}.{}", self.format.extension());
        self.ask(
            DialogRequest::new(DialogPurpose::Export, DialogKind::Save { file_name })
                .filter(self.format.to_string(), &[self.format.extension()]),
        );
    }

    /// Exports the selected result to `path` on a background thread.
    pub fn export_selected_to(&mut self, path: PathBuf) {
        let Some(item) = self.workspace.selected() else {
            return;
        };
        let (Some(image), Some(mask)) = (item.original.clone(), item.mask.clone()) else {
            self.notify(
                "nothing to export yet: the result is still being made",
                true,
            );
            return;
        };
        let id = item.id;
        let strokes = item.strokes.clone();
        let icc_profile = item.icc_profile.clone();
        let partials = self.partials_journal();
        let format = self.format;
        let settings = self.finish.for_format(format);
        let background = self.view.background.clone();
        let gpu = self.gpu_target();
        self.spawn_task(move || {
            let final_mask = finish::final_mask(&mask, &strokes, &settings.edges);
            let result = finish::render_final(&image, &final_mask, &settings)
                .map_err(|too_large| crate::Error::OutputTooLarge {
                    width: too_large.width,
                    height: too_large.height,
                    path: path.clone(),
                })
                .and_then(|(image, mask)| {
                    let profile = icc_profile.as_deref().map(Vec::as_slice);
                    export(
                        &image,
                        &mask,
                        format,
                        &background,
                        gpu.as_ref(),
                        profile,
                        &path,
                    )
                    .and_then(|bytes| write_output(&path, &bytes, partials.as_deref()))
                });
            match result {
                Ok(()) => vec![
                    TaskResult::Delivered { id, final_mask },
                    TaskResult::Notice(Notice {
                        text: format!("exported {}", path.display()),
                        is_error: false,
                    }),
                ],
                Err(e) => vec![TaskResult::Notice(Notice {
                    text: e.to_string(),
                    is_error: true,
                })],
            }
        });
    }

    /// The window's device and compositor, when it renders with wgpu.
    fn gpu_target(&self) -> Option<GpuTarget> {
        let render_state = self.render_state.as_ref()?;
        Some(GpuTarget {
            device: render_state.device.clone(),
            queue: render_state.queue.clone(),
            compositor: self.compositor.clone()?,
        })
    }

    /// Recomputes the displayed mask of `id` from the model's preview mask,
    /// the strokes and the edge settings, on a short-lived thread. At most
    /// one runs per image: a slider dragged over many frames asks many times,
    /// and the requests made meanwhile are served by one run when it returns.
    pub(super) fn refresh_preview(&mut self, id: ImageId) {
        let settings = self.finish;
        let edges = settings.edges;
        let Some(item) = self.workspace.get_mut(id) else {
            return;
        };
        item.mask_version += 1;
        // The canvas shows the model's mask as it is (colour-spill removal,
        // on by default, changes only exported colours): nothing to compute.
        if item.strokes.is_empty()
            && !edges.changes_mask()
            && !editor::needs_finished_preview(&settings)
        {
            item.preview_dirty = false;
            item.edited_preview_mask = None;
            item.finished_preview = None;
            return;
        }
        if item.preview_pending {
            item.preview_dirty = true;
            return;
        }
        let (Some(preview), Some(mask), Some(scale)) = (
            item.preview.clone(),
            item.preview_mask.clone(),
            item.preview_scale(),
        ) else {
            return;
        };
        let strokes = item.strokes.clone();
        let version = item.mask_version;
        item.preview_pending = true;
        self.spawn_task(move || {
            // Over the limit, the canvas keeps the photo's frame; the export says why.
            let finished = editor::needs_finished_preview(&settings)
                .then(|| editor::finished_preview(&preview, &mask, &strokes, &settings, scale))
                .and_then(Result::ok);
            let mask = editor::preview_mask(&mask, &strokes, &edges, scale);
            vec![TaskResult::PreviewMask {
                id,
                version,
                mask,
                finished,
            }]
        });
    }

    /// Renders the finished cut-out off the UI thread (≈ 1.7 s at 12 MP with
    /// every edge and layout tool on); the clipboard is set when it is back.
    pub(super) fn copy_result(&mut self) {
        let Some(item) = self.workspace.selected() else {
            return;
        };
        let (Some(image), Some(mask)) = (item.original.clone(), item.mask.clone()) else {
            return;
        };
        if self.copying {
            return;
        }
        self.copying = true;
        let (id, strokes, settings) = (item.id, item.strokes.clone(), self.finish);
        self.spawn_task(move || {
            let final_mask = finish::final_mask(&mask, &strokes, &settings.edges);
            let result = match finish::render_final(&image, &final_mask, &settings) {
                Ok((image, mask)) => Ok((crate::composite::cpu::cutout(&image, &mask), final_mask)),
                Err(too_large) => Err(format!(
                    "the cut-out would be {}×{} pixels, over the {} MP limit; lower the crop margin or the canvas",
                    too_large.width,
                    too_large.height,
                    crate::limits::MAX_OUTPUT_PIXELS / 1_000_000
                )),
            };
            vec![TaskResult::CopyReady { id, result }]
        });
    }

    /// Puts a rendered cut-out on the clipboard.
    fn finish_copy(&mut self, id: ImageId, cut: Result<(RgbaImage, Arc<GrayImage>), String>) {
        self.copying = false;
        let (cut, final_mask) = match cut {
            Ok(cut) => cut,
            Err(why) => {
                self.notify(format!("could not copy: {why}"), true);
                return;
            }
        };
        let data = arboard::ImageData {
            width: cut.width() as usize,
            height: cut.height() as usize,
            bytes: cut.into_raw().into(),
        };
        match arboard::Clipboard::new().and_then(|mut c| c.set_image(data)) {
            Ok(()) => {
                self.delivered(id, final_mask);
                self.notify("result copied", false);
            }
            Err(e) => self.notify(format!("could not copy ({e})"), true),
        }
    }

    /// Applies what the short tasks reported since last frame.
    pub(super) fn drain_tasks(&mut self) {
        for result in self.tasks_rx.try_iter().collect::<Vec<_>>() {
            match result {
                TaskResult::Notice(notice) => self.notices.push(notice),
                TaskResult::Delivered { id, final_mask } => self.delivered(id, final_mask),
                TaskResult::Presets(presets) => self.presets = presets,
                TaskResult::CopyReady { id, result } => self.finish_copy(id, result),
                TaskResult::PreviewMask {
                    id,
                    version,
                    mask,
                    finished,
                } => self.preview_mask_ready(id, version, mask, finished),
                TaskResult::Picture(Ok(image)) => {
                    self.next_picture_key += 1;
                    self.view.background = Background::Picture {
                        key: self.next_picture_key,
                        image: Arc::new(image),
                    };
                }
                TaskResult::Picture(Err(e)) => self.notify(e, true),
            }
        }
    }

    fn preview_mask_ready(
        &mut self,
        id: ImageId,
        version: u64,
        mask: GrayImage,
        finished: Option<(RgbaImage, GrayImage)>,
    ) {
        let Some(item) = self.workspace.get_mut(id) else {
            return;
        };
        item.preview_pending = false;
        if item.mask_version == version {
            item.edited_preview_mask = Some(Arc::new(mask));
            item.finished_preview = finished.map(|(c, a)| (Arc::new(c), Arc::new(a)));
            item.mask_version += 1;
        }
        // Changes made while it ran: one more recompute for all of them.
        if std::mem::take(&mut item.preview_dirty) {
            self.refresh_preview(id);
        }
    }
}
