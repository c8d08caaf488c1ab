//! Applying what the background threads reported since the last frame: the
//! worker (decoded, preview, finished…), model downloads and imports, files
//! handed over by a later launch, the batch, the store writer, file dialogs
//! and the short tasks.

use std::path::PathBuf;

use super::models_page::CustomForm;
use super::worker::{Event, PREVIEW_MODEL};
use super::{DesktopApp, EngineStatus, Page, Status};
use crate::models::manager::ManagerEvent;

impl DesktopApp {
    /// Applies everything reported since last frame.
    pub fn drain_events(&mut self) {
        self.drain_handoff();
        self.drain_model_events();
        // Whatever page is shown: the batch waits on a bounded channel.
        if let Some(run) = &mut self.batch.run {
            run.update();
        }
        self.run_watched_arrivals();
        for event in self.worker.poll() {
            self.apply_worker_event(event);
        }
        self.drain_store_reports();
        if let Some(answer) = self.dialogs.poll() {
            self.apply_dialog_answer(answer);
        }
        self.drain_tasks();
    }

    /// Files a later launch handed to this window.
    fn drain_handoff(&mut self) {
        let handed: Vec<PathBuf> = self
            .handoff
            .as_ref()
            .map(|h| h.try_iter().flatten().collect())
            .unwrap_or_default();
        if !handed.is_empty() {
            self.page = Page::Workspace;
            self.open_paths(handed);
            self.ctx.send_viewport_cmd(egui::ViewportCommand::Focus);
        }
    }

    fn mark(&self, step: &str) {
        if let Some(timeline) = &self.timeline {
            timeline.mark(step);
        }
    }

    fn apply_worker_event(&mut self, event: Event) {
        match event {
            Event::EngineReady { model, provider } => {
                self.mark("ready");
                self.engine = EngineStatus::Ready { model, provider }
            }
            Event::EngineFailed { message } => {
                // A missing model is explained by the first-run card and
                // the Models page, not by an error line.
                if self.model_manager.is_installed(&self.model) {
                    self.notify(message.clone(), true);
                }
                self.engine = EngineStatus::Failed(message);
            }
            Event::Decoded {
                id,
                image,
                preview,
                icc_profile,
            } => {
                self.mark("decoded");
                self.workspace.decoded(id, image, preview, icc_profile)
            }
            Event::Started { id } => {
                self.mark("started");
                self.workspace.set_status(id, Status::Removing)
            }
            Event::PreviewModelReady => self.preview_model_ready = true,
            Event::Preview { id, preview_mask } => {
                self.mark("preview");
                self.workspace.provisional(id, preview_mask);
            }
            Event::Finished {
                id,
                mask,
                preview_mask,
                inference,
                review,
            } => {
                self.last_inference = Some(inference);
                self.mark("result");
                self.workspace
                    .finished(id, mask.clone(), preview_mask, Some(review));
                self.refresh_preview(id);
                self.keep_result(id, mask);
            }
            Event::Restored {
                id,
                mask,
                preview_mask,
            } => {
                self.workspace.finished(id, mask, preview_mask, None);
                self.refresh_preview(id);
            }
            Event::Failed { id, message } => self.workspace.fail(id, message),
            Event::WaitingForModel { id } => self.workspace.set_status(id, Status::WaitingForModel),
            Event::Cancelled { id } => self.workspace.set_status(id, Status::Cancelled),
        }
    }

    /// Applies what model downloads and imports reported.
    fn drain_model_events(&mut self) {
        for event in self.model_manager.poll() {
            match event {
                ManagerEvent::Installed { id, .. } => self.model_installed(id),
                ManagerEvent::DownloadFailed { message, .. }
                | ManagerEvent::ImportFailed { message } => self.notify(message, true),
                ManagerEvent::DownloadCancelled { message, .. } => self.notify(message, false),
                ManagerEvent::NeedsConfirmation(unknown) => {
                    self.custom_form = CustomForm {
                        name: unknown
                            .path
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        ..Default::default()
                    };
                    self.page = Page::Models;
                }
            }
        }
    }

    fn model_installed(&mut self, id: String) {
        let name = self
            .model_manager
            .row(&id)
            .map_or(id.clone(), |r| r.name.clone());
        self.notify(format!("model installed: {name}"), false);
        if id == PREVIEW_MODEL && self.instant_preview() {
            self.worker.warm_preview();
        }
        // The model that was missing, or the first one there is: use it.
        let engine_down = matches!(self.engine, EngineStatus::Failed(_));
        if id == self.model && engine_down {
            self.reload_engine();
        } else if engine_down && !self.model_manager.is_installed(&self.model) {
            self.switch_model(&id);
        }
    }
}
