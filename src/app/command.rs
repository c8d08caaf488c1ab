//! What the user asked for, as data. Widgets and shortcuts only read state
//! and push a [`Command`]; [`DesktopApp::apply_commands`] applies them once
//! per frame, after layout, and is the one place that starts work: threads,
//! file dialogs, store jobs, consent and downloads.

use std::path::PathBuf;

use super::batch_panel::BatchAction;
use super::dialogs::DialogRequest;
use super::editor::EditAction;
use super::models_page::ModelsAction;
use super::worker::ImageId;
use super::{DesktopApp, Notice, Page};

#[must_use = "a command does nothing until it is pushed to the app's queue"]
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Files, and the images directly inside folders.
    OpenPaths(Vec<PathBuf>),
    /// Show a file dialog; its answer arrives on a later frame.
    Ask(DialogRequest),
    /// Open the clipboard's image.
    Paste,
    /// Put the selected result on the clipboard.
    CopyResult,
    /// Ask where to export the selected result.
    ExportSelected,
    Cancel(ImageId),
    /// File the brush stroke just painted on the selected image.
    CommitStroke,
    Edit(EditAction),
    SwitchModel(String),
    Models(ModelsAction),
    SetBestQuality(bool),
    /// Fast (the int8 variant) or balanced.
    SetSpeed(crate::engine::inference::Speed),
    SetInstantPreview(bool),
    Batch(BatchAction),
    /// The Account pane's switch (an opt-out takes effect at once).
    SetConsent(bool),
    /// Delete everything stored locally.
    PurgeAll,
    ShowPage(Page),
    DismissNotice(usize),
    /// Take the export settings of `presets[index]`.
    ApplyPreset(usize),
    /// Save the current export settings as a preset of this name.
    SavePreset(String),
}

impl DesktopApp {
    /// Queues a command for the end of this frame.
    pub(super) fn send(&mut self, command: Command) {
        self.commands.push(command);
    }

    /// Applies what this frame's widgets and shortcuts asked for.
    pub(super) fn apply_commands(&mut self) {
        let commands = std::mem::take(&mut self.commands);
        if !commands.is_empty() {
            // Their effects (a new page, a notice) show on the next frame.
            self.ctx.request_repaint();
        }
        for command in commands {
            self.apply(command);
        }
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::OpenPaths(paths) => self.open_paths(paths),
            Command::Ask(request) => self.ask(request),
            Command::Paste => self.paste(),
            Command::CopyResult => self.copy_result(),
            Command::ExportSelected => self.export_dialog(),
            Command::Cancel(id) => self.cancel(id),
            Command::CommitStroke => self.commit_stroke(),
            Command::Edit(action) => self.edit(action),
            Command::SwitchModel(id) => self.switch_model(&id),
            Command::Models(action) => self.models_action(action),
            Command::SetBestQuality(on) => self.set_best_quality(on),
            Command::SetSpeed(speed) => self.set_speed(speed),
            Command::SetInstantPreview(on) => self.set_instant_preview(on),
            Command::Batch(action) => self.batch_action(action),
            Command::SetConsent(on) => self.set_consent(on),
            Command::PurgeAll => self.purge_all(),
            Command::ShowPage(page) => self.page = page,
            Command::ApplyPreset(index) => self.apply_preset(index),
            Command::SavePreset(name) => self.save_preset(name),
            Command::DismissNotice(index) => {
                if index < self.notices.len() {
                    self.notices.remove(index);
                }
            }
        }
    }

    pub(super) fn notify(&mut self, text: impl Into<String>, is_error: bool) {
        self.notices.push(Notice {
            text: text.into(),
            is_error,
        });
    }
}
