//! The frame's layout: the page bar, the status bar, notices and the four
//! pages. Everything here reads state and pushes [`Command`]s; plain view
//! state (the page shown, zoom, the divider, sliders) is changed in place,
//! and nothing here starts work.

use std::path::PathBuf;
use std::time::Duration;

use egui::{Color32, Modifiers, RichText};

use super::command::Command;
use super::dialogs::{DialogKind, DialogPurpose, DialogRequest};
use super::worker::PREVIEW_MODEL;
use super::{
    BEST_QUALITY_LABEL, BRUSH, BackgroundAction, COPY, CanvasEvent, DIVIDER_LEFT, DIVIDER_RIGHT,
    DesktopApp, EXPORT, EngineStatus, IMAGE_EXTENSIONS, NEXT_IMAGE, OPEN, PAGE_KEYS, PASTE,
    PREVIEW_LABEL, PREVIOUS_IMAGE, Page, QUALITY_HINT, REDO, Status, UNDO, ZOOM_FIT, ZOOM_IN,
    ZOOM_OUT,
};
use super::{account, batch_panel, busy, canvas, editor, models_page};
use crate::models::manager::{RowDownload, human_bytes};

/// Width of the images list and the inspector when the window opens.
const SIDE_PANEL_WIDTH: f32 = 220.0;
/// Keyboard zoom steps and divider nudges.
const ZOOM_STEP: f32 = 1.25;
const DIVIDER_STEP: f32 = 0.1;
/// How often a running batch's rate and ETA are redrawn.
const BATCH_TICK: Duration = Duration::from_millis(500);
/// The status bar's "local only" green.
const LOCAL_ONLY_GREEN: Color32 = Color32::from_rgb(60, 150, 90);

impl DesktopApp {
    /// Lays out one frame; what the user asked for is in `self.commands`.
    pub(super) fn frame(&mut self, ui: &mut egui::Ui) {
        self.handle_input(ui);
        egui::Panel::top("pages").show(ui, |ui| {
            ui.horizontal(|ui| {
                for (page, name) in [
                    (Page::Workspace, "Workspace"),
                    (Page::Batch, "Batch"),
                    (Page::Models, "Models"),
                    (Page::Account, "Account"),
                ] {
                    ui.selectable_value(&mut self.page, page, name);
                }
            });
        });
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        if self.page == Page::Workspace {
            // The side panels go before the notices, which span the middle.
            self.side_panels(ui);
        }
        if !self.notices.is_empty() {
            egui::Panel::top("notices").show(ui, |ui| self.notices_ui(ui));
        }
        egui::CentralPanel::default().show(ui, |ui| match self.page {
            Page::Workspace => self.canvas_area(ui),
            Page::Batch => {
                egui::ScrollArea::vertical().show(ui, |ui| self.batch_page(ui));
            }
            Page::Models => self.models_page(ui),
            Page::Account => self.account_page(ui),
        });
    }

    /// Drops, shortcuts, paste and copy.
    fn handle_input(&mut self, ui: &mut egui::Ui) {
        let dropped: Vec<PathBuf> = ui.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        if !dropped.is_empty() {
            if self.page == Page::Batch {
                // A folder dropped on the Batch page is its input.
                if let Some(folder) = dropped.into_iter().find(|p| p.is_dir()) {
                    self.batch.input = Some(folder);
                }
            } else {
                self.send(Command::OpenPaths(dropped));
            }
        }
        if ui.input_mut(|i| i.consume_shortcut(&OPEN)) {
            self.send(open_images_request());
        }
        for (key, page) in PAGE_KEYS {
            if ui.input_mut(|i| i.consume_key(Modifiers::ALT, key)) {
                self.send(Command::ShowPage(page));
            }
        }
        self.view_shortcuts(ui);
        if ui.input_mut(|i| i.consume_shortcut(&EXPORT)) {
            self.send(Command::ExportSelected);
        }
        // Redo first: Cmd+Z alone would also match Shift+Cmd+Z.
        if ui.input_mut(|i| i.consume_shortcut(&REDO)) {
            self.send(Command::Edit(editor::EditAction::Redo));
        } else if ui.input_mut(|i| i.consume_shortcut(&UNDO)) {
            self.send(Command::Edit(editor::EditAction::Undo));
        }
        // Paste and copy arrive as events when a text field has no focus.
        let (paste, copy) = ui.input(|i| {
            (
                i.events.iter().any(|e| match e {
                    egui::Event::Paste(_) => true,
                    egui::Event::Key {
                        key,
                        pressed,
                        modifiers,
                        ..
                    } => *key == PASTE.logical_key && *pressed && modifiers.command,
                    _ => false,
                }),
                i.events.iter().any(|e| matches!(e, egui::Event::Copy)),
            )
        });
        if paste {
            self.send(Command::Paste);
        }
        if copy {
            self.send(Command::CopyResult);
        }
    }

    /// Selection, zoom, the divider and the brush: view state, changed here.
    fn view_shortcuts(&mut self, ui: &mut egui::Ui) {
        let pressed = |shortcut| ui.input_mut(|i| i.consume_shortcut(&shortcut));
        if pressed(NEXT_IMAGE) {
            self.workspace.select_step(1);
        }
        if pressed(PREVIOUS_IMAGE) {
            self.workspace.select_step(-1);
        }
        if pressed(ZOOM_FIT) {
            self.view.fit();
        }
        if pressed(ZOOM_IN) {
            self.view.zoom_by(ZOOM_STEP);
        }
        if pressed(ZOOM_OUT) {
            self.view.zoom_by(1.0 / ZOOM_STEP);
        }
        if pressed(DIVIDER_LEFT) {
            self.view.move_divider(-DIVIDER_STEP);
        }
        if pressed(DIVIDER_RIGHT) {
            self.view.move_divider(DIVIDER_STEP);
        }
        let typing = ui.ctx().egui_wants_keyboard_input();
        if !typing && ui.input_mut(|i| i.consume_key(Modifiers::NONE, BRUSH)) {
            self.view.brush.cycle_mode();
        }
    }

    fn status_bar(&self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            match &self.engine {
                EngineStatus::Loading => {
                    busy::busy_mark(ui, "loading the model");
                    ui.label("Loading model…");
                }
                EngineStatus::Ready { model, provider } => {
                    ui.label(format!("{model} · {provider} · ready"));
                }
                EngineStatus::Failed(_) if !self.model_manager.is_installed(&self.model) => {
                    ui.label("No model installed yet");
                }
                EngineStatus::Failed(_) => {
                    ui.colored_label(ui.visuals().error_fg_color, "Model not loaded");
                }
            }
            if let Some(t) = self.last_inference {
                ui.separator();
                ui.label(format!("last: {:.2} s", t.as_secs_f32()));
            }
            let opted_in = self.privacy().is_some_and(|p| p.opted_in());
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if opted_in {
                    // The cached count: the store is not read every frame.
                    ui.label(format!(
                        "Opted in · exported images may be sent to improve models · {} waiting",
                        self.queued_uploads
                    ));
                } else {
                    ui.label(
                        RichText::new("Local only · nothing leaves this computer")
                            .color(LOCAL_ONLY_GREEN),
                    );
                }
            });
        });
    }

    fn notices_ui(&mut self, ui: &mut egui::Ui) {
        let mut dismiss = None;
        for (i, notice) in self.notices.iter().enumerate() {
            ui.horizontal(|ui| {
                let colour = if notice.is_error {
                    ui.visuals().error_fg_color
                } else {
                    ui.visuals().text_color()
                };
                ui.colored_label(colour, &notice.text);
                if ui.small_button("×").on_hover_text("Dismiss").clicked() {
                    dismiss = Some(i);
                }
            });
        }
        if let Some(i) = dismiss {
            self.send(Command::DismissNotice(i));
        }
    }

    /// The Workspace page's images list and inspector.
    fn side_panels(&mut self, ui: &mut egui::Ui) {
        egui::Panel::left("images")
            .default_size(SIDE_PANEL_WIDTH)
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.heading("Images");
                    let open = ui.button("Open…").on_hover_text(format!(
                        "Open images ({})",
                        ui.ctx().format_shortcut(&OPEN)
                    ));
                    if open.clicked() {
                        self.send(open_images_request());
                    }
                });
                ui.separator();
                if let Some(cancel) = self.workspace.list_ui(ui) {
                    self.send(Command::Cancel(cancel));
                }
            });
        egui::Panel::right("inspector")
            .default_size(SIDE_PANEL_WIDTH)
            .show(ui, |ui| {
                // Export stays in view whatever the settings above it take.
                egui::Panel::bottom("export")
                    .frame(egui::Frame::NONE.inner_margin(egui::Margin::symmetric(0, 6)))
                    .show(ui, |ui| self.export_footer(ui));
                egui::ScrollArea::vertical().show(ui, |ui| self.inspector(ui));
            });
    }

    /// The Workspace page's middle: the canvas, the one-click model
    /// download while an image waits for it, or the first-run card.
    fn canvas_area(&mut self, ui: &mut egui::Ui) {
        let hovering = ui.input(|i| !i.raw.hovered_files.is_empty());
        let model_missing = !self.model_manager.is_installed(&self.model);
        let waiting = self
            .workspace
            .selected()
            .is_some_and(|item| item.status == Status::WaitingForModel);
        if waiting && model_missing {
            // The image waits beside the one-click download, never an error.
            let action = models_page::model_card_ui(ui, &self.model_manager, &self.model);
            self.models_command(action);
            ui.separator();
        }
        match self.workspace.selected_mut() {
            Some(item) => {
                if self.view.ui(ui, item, self.render_state.as_ref()) == CanvasEvent::StrokeFinished
                {
                    self.send(Command::CommitStroke);
                }
            }
            None if model_missing => {
                let action = models_page::first_run_ui(ui, &self.model_manager, &self.model);
                self.models_command(action);
            }
            None => canvas::empty_state(ui, hovering),
        }
    }

    fn models_command(&mut self, action: models_page::ModelsAction) {
        if action != models_page::ModelsAction::None {
            self.send(Command::Models(action));
        }
    }

    fn inspector(&mut self, ui: &mut egui::Ui) {
        self.model_choice(ui);
        self.preview_choice(ui);
        self.quality_choice(ui);
        ui.add_space(12.0);
        ui.heading("Result");
        ui.add_space(4.0);
        self.preset_choice(ui);
        ui.add_space(4.0);
        ui.label("Background");
        if canvas::background_picker(ui, &mut self.view.background)
            == BackgroundAction::ChoosePicture
        {
            self.send(Command::Ask(
                DialogRequest::new(DialogPurpose::BackgroundPicture, DialogKind::PickFile)
                    .filter("Images", IMAGE_EXTENSIONS),
            ));
        }
        ui.add_space(8.0);
        let (can_undo, can_redo) = self.workspace.selected().map_or((false, false), |i| {
            (!i.strokes.is_empty(), !i.redo.is_empty())
        });
        let action = editor::editor_ui(
            ui,
            &mut self.view.brush,
            &mut self.finish,
            can_undo,
            can_redo,
        );
        if action != editor::EditAction::None {
            self.send(Command::Edit(action));
        }
    }

    /// The export format and the Export / Copy buttons, pinned under the
    /// inspector.
    fn export_footer(&mut self, ui: &mut egui::Ui) {
        editor::format_choice(ui, "Export format", &mut self.format);
        ui.add_space(6.0);
        self.export_buttons(ui);
    }

    /// Choose an export preset, or save the current settings as one.
    pub(super) fn preset_choice(&mut self, ui: &mut egui::Ui) {
        let mut chosen = None;
        ui.horizontal(|ui| {
            egui::ComboBox::from_label("Preset")
                .selected_text("Choose…")
                .width(90.0)
                .show_ui(ui, |ui| {
                    for (index, preset) in self.presets.iter().enumerate() {
                        if ui
                            .selectable_label(false, &preset.name)
                            .on_hover_text(preset.summary())
                            .clicked()
                        {
                            chosen = Some(index);
                        }
                    }
                });
            ui.toggle_value(&mut self.naming_preset, "Save…")
                .on_hover_text("Save the current export settings as a preset");
        });
        if let Some(index) = chosen {
            self.send(Command::ApplyPreset(index));
        }
        // The name field shows only while saving, to keep the inspector short.
        if !self.naming_preset {
            return;
        }
        ui.horizontal(|ui| {
            ui.add(
                egui::TextEdit::singleline(&mut self.preset_name)
                    .hint_text("preset name")
                    .desired_width(110.0),
            );
            let name = self.preset_name.trim().to_string();
            if ui
                .add_enabled(!name.is_empty(), egui::Button::new("Save as preset"))
                .on_hover_text(
                    "Keep these export settings under this name (settings only, no image names)",
                )
                .clicked()
            {
                self.send(Command::SavePreset(name));
                self.preset_name.clear();
                self.naming_preset = false;
            }
        });
    }

    fn model_choice(&mut self, ui: &mut egui::Ui) {
        ui.heading("Model");
        let mut chosen = None;
        for m in self.model_manager.rows() {
            let response = ui
                .add_enabled(
                    m.installed.is_some(),
                    egui::Button::selectable(m.id == self.model, &m.name),
                )
                .on_hover_text(format!("Licence: {}", m.licence));
            if m.installed.is_none() {
                response.on_disabled_hover_text("Not installed: get it on the Models page");
            } else if response.clicked() {
                chosen = Some(m.id.clone());
            }
        }
        if let Some(id) = chosen {
            self.send(Command::SwitchModel(id));
        }
        // The speed shares this row: the inspector has no height to spare
        // at 1280×800.
        ui.horizontal(|ui| {
            if ui.button("Manage models…").clicked() {
                self.send(Command::ShowPage(Page::Models));
            }
            if let Some(speed) = super::speed_choice(ui, self.speed) {
                self.send(Command::SetSpeed(speed));
            }
        });
    }

    fn export_buttons(&mut self, ui: &mut egui::Ui) {
        let ready = self.workspace.selected().is_some_and(|i| i.mask.is_some());
        ui.horizontal(|ui| {
            let export = ui
                .add_enabled(ready, egui::Button::new("Export…"))
                .on_hover_text(format!(
                    "Save the result ({})",
                    ui.ctx().format_shortcut(&EXPORT)
                ));
            if export.clicked() {
                self.send(Command::ExportSelected);
            }
            let copy = ui
                .add_enabled(
                    ready && !self.copying,
                    egui::Button::new(if self.copying { "Copying…" } else { "Copy" }),
                )
                .on_hover_text(format!(
                    "Copy the result ({})",
                    ui.ctx().format_shortcut(&COPY)
                ));
            if copy.clicked() {
                self.send(Command::CopyResult);
            }
        });
    }

    /// Best quality on or off (it redoes the image on screen).
    fn quality_choice(&mut self, ui: &mut egui::Ui) {
        let mut on = self.best_quality();
        let response = ui
            .checkbox(&mut on, BEST_QUALITY_LABEL)
            .on_hover_text(QUALITY_HINT);
        if response.changed() {
            self.send(Command::SetBestQuality(on));
        }
        // Its second opinion is the preview model (offered for download
        // above); models of the U²-Net family (min-max output) get none.
        let asks_second_opinion = self
            .model_manager
            .catalog()
            .get(&self.model)
            .is_some_and(|m| m.postprocess != crate::models::catalog::PostProcess::MinMax);
        if on && asks_second_opinion && !self.model_manager.is_installed(PREVIEW_MODEL) {
            ui.weak("without its second opinion: it needs the preview model");
        }
    }

    /// The instant preview: on or off, or one click to get its model.
    fn preview_choice(&mut self, ui: &mut egui::Ui) {
        if self.model == PREVIEW_MODEL {
            return;
        }
        let installed = self.model_manager.is_installed(PREVIEW_MODEL);
        // Shown off while its model is missing, whatever the setting.
        let mut on = installed && self.instant_preview();
        let response = ui
            .add_enabled(installed, egui::Checkbox::new(&mut on, PREVIEW_LABEL))
            .on_hover_text(
                "Shows a quick cut-out from U²-Net portable while the full model runs; \
                 the full result then takes a little longer",
            );
        if response.changed() {
            self.send(Command::SetInstantPreview(on));
        }
        if on && installed && !self.preview_model_ready {
            ui.weak("loading the preview model…");
        }
        let row = self
            .model_manager
            .rows()
            .iter()
            .find(|r| r.id == PREVIEW_MODEL);
        if let Some(row) = row.filter(|_| !installed) {
            let downloading = matches!(row.download, RowDownload::Running { .. });
            let size = match &row.download {
                RowDownload::Available {
                    bytes: Some(bytes), ..
                } => format!(" ({})", human_bytes(*bytes)),
                _ => String::new(),
            };
            let get = ui.add_enabled(
                !downloading,
                egui::Button::new(format!("Get the preview model{size}")).small(),
            );
            if get.clicked() {
                self.send(Command::Models(models_page::ModelsAction::Download(
                    PREVIEW_MODEL.into(),
                )));
            }
        }
    }

    fn batch_page(&mut self, ui: &mut egui::Ui) {
        let action = self.batch.ui(ui, &self.presets, self.speed);
        if action != batch_panel::BatchAction::None {
            self.send(Command::Batch(action));
        }
        // Keep the rate and ETA ticking while it runs.
        if self.batch.run.as_ref().is_some_and(|r| !r.is_finished()) {
            ui.ctx().request_repaint_after(BATCH_TICK);
        }
    }

    fn models_page(&mut self, ui: &mut egui::Ui) {
        let action = egui::ScrollArea::vertical()
            .show(ui, |ui| {
                models_page::models_ui(ui, &self.model_manager, &self.model, &mut self.custom_form)
            })
            .inner;
        self.models_command(action);
    }

    fn account_page(&mut self, ui: &mut egui::Ui) {
        egui::ScrollArea::vertical().show(ui, |ui| {
            match self.services.as_ref() {
                Some(services) => {
                    let uploader = services.uploader.state();
                    let asked = account::account_ui(
                        ui,
                        &services.privacy,
                        &mut self.confirm_delete,
                        uploader,
                    );
                    if let Some(command) = asked {
                        self.commands.push(command);
                    }
                }
                None => {
                    ui.label("Local data cannot be managed on this computer; nothing is kept.");
                }
            }
            ui.add_space(16.0);
            account::appearance_ui(ui);
        });
    }
}

fn open_images_request() -> Command {
    Command::Ask(
        DialogRequest::new(DialogPurpose::OpenImages, DialogKind::PickFiles)
            .filter("Images", IMAGE_EXTENSIONS),
    )
}
