//! The Models page and the first-run card: rows from the model manager turned
//! into widgets, and the user's clicks turned into [`ModelsAction`]s. The
//! work (downloads, hashing, copying) happens in `crate::models`.

use egui::{Color32, RichText};

use crate::models::manager::{ModelManager, ModelRow, RowDownload, human_bytes};
use crate::models::{CustomPreset, Location};

/// What the page asks of the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelsAction {
    None,
    Use(String),
    Download(String),
    Cancel(String),
    Remove(String),
    /// Open the native file dialog.
    Import,
    ConfirmCustom,
    DismissCustom,
    /// From the first-run card: show the whole catalog.
    ShowModels,
}

/// What the user is typing for an unrecognised import.
#[derive(Debug, Clone)]
pub struct CustomForm {
    pub name: String,
    pub preset: CustomPreset,
}

impl Default for CustomForm {
    fn default() -> Self {
        Self {
            name: String::new(),
            preset: CustomPreset::Isnet,
        }
    }
}

/// The first-run card's main button reads like this (tests click it).
pub const FIRST_RUN_BUTTON: &str = "Download the default model";

const WARN: Color32 = Color32::from_rgb(210, 140, 30);
/// The "in use" mark (the status bar's "local only" green).
const IN_USE_GREEN: Color32 = Color32::from_rgb(60, 150, 90);

pub fn models_ui(
    ui: &mut egui::Ui,
    manager: &ModelManager,
    in_use: &str,
    form: &mut CustomForm,
) -> ModelsAction {
    let mut action = ModelsAction::None;
    ui.heading("Models");
    ui.label(
        "Models run on this computer. A download starts only when you press Download; \
         nothing is fetched on its own.",
    );
    ui.add_space(6.0);
    ui.horizontal(|ui| {
        let import = ui
            .add_enabled(!manager.importing, egui::Button::new("Import model file…"))
            .on_hover_text(
                "Install an .onnx file you already have: a catalog model is recognised by \
                 its checksum; any other file can be added as a custom model.",
            );
        if import.clicked() {
            action = ModelsAction::Import;
        }
        if manager.importing {
            super::busy::busy_mark(ui, "checking the file");
            ui.label("checking the file…");
        }
    });
    if let Some(unknown) = &manager.pending_custom {
        ui.add_space(6.0);
        egui::Frame::group(ui.style()).show(ui, |ui| {
            let file = unknown
                .path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy();
            ui.label(RichText::new(format!("{file} matches no model in the catalog.")).strong());
            ui.label(format!(
                "{} · input '{}' {} · output '{}' · sha256 {}…",
                human_bytes(unknown.size),
                unknown.input,
                unknown
                    .input_size
                    .map_or("(size not fixed)".to_string(), |(w, h)| format!("{w}×{h}")),
                unknown.output,
                &unknown.sha256[..16]
            ));
            ui.colored_label(
                WARN,
                "Only add files you trust. Its licence is unknown: check it before commercial use.",
            );
            ui.horizontal(|ui| {
                ui.label("Name");
                ui.text_edit_singleline(&mut form.name);
            });
            egui::ComboBox::from_label("Feed it like")
                .selected_text(form.preset.label())
                .show_ui(ui, |ui| {
                    for preset in CustomPreset::ALL {
                        ui.selectable_value(&mut form.preset, preset, preset.label());
                    }
                });
            ui.horizontal(|ui| {
                if ui.button("Add custom model").clicked() {
                    action = ModelsAction::ConfirmCustom;
                }
                if ui.button("Cancel").clicked() {
                    action = ModelsAction::DismissCustom;
                }
            });
        });
    }
    ui.add_space(10.0);
    for row in manager.rows() {
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.set_width(ui.available_width());
            if let Some(a) = row_ui(ui, row, row.id == in_use) {
                action = a;
            }
        });
        ui.add_space(4.0);
    }
    action
}

fn row_ui(ui: &mut egui::Ui, row: &ModelRow, in_use: bool) -> Option<ModelsAction> {
    let mut action = None;
    ui.horizontal(|ui| {
        ui.label(RichText::new(&row.name).strong().size(15.0));
        if row.is_default {
            ui.label(RichText::new("default").small().weak());
        }
        if in_use {
            ui.label(RichText::new("in use").small().color(IN_USE_GREEN));
        }
    });
    ui.label(&row.description);
    ui.horizontal_wrapped(|ui| {
        if let Some(bytes) = row.size_bytes {
            ui.label(human_bytes(bytes));
            ui.separator();
        }
        let licence = ui.label(format!("Licence: {}", row.licence));
        if !row.licence_note.is_empty() {
            licence.on_hover_text(&row.licence_note);
        }
        if !row.commercial_use {
            ui.colored_label(
                WARN,
                if row.is_custom {
                    "Licence unknown: check it before commercial use"
                } else {
                    "Non-commercial use only"
                },
            );
        }
    });
    ui.horizontal_wrapped(|ui| {
        match &row.installed {
            Some((path, Location::Bundled)) => {
                ui.label("Installed with the app")
                    .on_hover_text(path.display().to_string());
            }
            Some((path, Location::User)) => {
                ui.label("Installed in your models folder")
                    .on_hover_text(path.display().to_string());
            }
            None => {
                ui.label(RichText::new("Not installed").weak());
            }
        }
        if row.installed.is_some() && !in_use && ui.button("Use").clicked() {
            action = Some(ModelsAction::Use(row.id.clone()));
        }
        if let Some(asked) = download_ui(ui, row) {
            action = Some(asked);
        }
        // Not the model in use: the app would be left without one.
        if matches!(row.installed, Some((_, Location::User)))
            && !in_use
            && ui
                .button("Remove")
                .on_hover_text("Delete this model from your models folder")
                .clicked()
        {
            action = Some(ModelsAction::Remove(row.id.clone()));
        }
    });
    action
}

/// A running download's progress and Cancel, or Download / Resume.
fn download_ui(ui: &mut egui::Ui, row: &ModelRow) -> Option<ModelsAction> {
    let mut action = None;
    match &row.download {
        RowDownload::Running {
            progress,
            cancelling,
        } => {
            let fraction = progress.and_then(|p| p.fraction());
            let text = match progress {
                Some(p) => match p.total {
                    Some(total) => {
                        format!("{} of {}", human_bytes(p.done), human_bytes(total))
                    }
                    None => human_bytes(p.done),
                },
                None => "connecting…".to_string(),
            };
            ui.add(
                egui::ProgressBar::new(fraction.unwrap_or(0.0))
                    .desired_width(220.0)
                    .text(text)
                    .animate(fraction.is_none()),
            );
            if *cancelling {
                ui.label("stopping…");
            } else if ui.button("Cancel").clicked() {
                action = Some(ModelsAction::Cancel(row.id.clone()));
            }
        }
        RowDownload::Available {
            host,
            bytes,
            partial,
        } if row.installed.is_none() => {
            let label = match (bytes, *partial > 0) {
                (Some(total), true) => format!(
                    "Resume download ({} of {})",
                    human_bytes(*partial),
                    human_bytes(*total)
                ),
                (None, true) => format!("Resume download ({} so far)", human_bytes(*partial)),
                (Some(total), false) => format!("Download ({})", human_bytes(*total)),
                (None, false) => "Download".to_string(),
            };
            if ui
                .button(label)
                .on_hover_text(format!(
                    "Fetches it from {host} now, checks its checksum, and keeps it in your models folder"
                ))
                .clicked()
            {
                action = Some(ModelsAction::Download(row.id.clone()));
            }
        }
        _ => {}
    }
    action
}

/// Shown in the empty workspace while the chosen model is not installed:
/// one click gets the default model.
pub fn first_run_ui(ui: &mut egui::Ui, manager: &ModelManager, model: &str) -> ModelsAction {
    ui.add_space(ui.available_height() * 0.25);
    download_card(
        ui,
        manager,
        model,
        "One step before the first cut-out",
        "is not installed yet.",
    )
}

/// Above an image opened before any model was installed: the same one-click
/// download; the image is processed as soon as the model lands.
pub fn model_card_ui(ui: &mut egui::Ui, manager: &ModelManager, model: &str) -> ModelsAction {
    ui.add_space(8.0);
    download_card(
        ui,
        manager,
        model,
        "Waiting for the model",
        "is not installed yet; your images are processed as soon as it is.",
    )
}

fn download_card(
    ui: &mut egui::Ui,
    manager: &ModelManager,
    model: &str,
    heading: &str,
    missing: &str,
) -> ModelsAction {
    let mut action = ModelsAction::None;
    let Some(row) = manager.row(model) else {
        return action;
    };
    ui.vertical_centered(|ui| {
        ui.heading(heading);
        ui.add_space(4.0);
        ui.label(format!(
            "Background removal runs on this computer with a model. {} {missing}",
            row.name
        ));
        ui.add_space(10.0);
        match &row.download {
            RowDownload::Running { progress, .. } => {
                let fraction = progress.and_then(|p| p.fraction()).unwrap_or(0.0);
                ui.add(
                    egui::ProgressBar::new(fraction)
                        .desired_width(360.0)
                        .show_percentage(),
                );
                if ui.button("Cancel").clicked() {
                    action = ModelsAction::Cancel(row.id.clone());
                }
            }
            RowDownload::Available {
                host,
                bytes,
                partial,
            } => {
                let button = egui::Button::new(RichText::new(FIRST_RUN_BUTTON).size(16.0))
                    .min_size(egui::vec2(280.0, 36.0));
                if ui.add(button).clicked() {
                    action = ModelsAction::Download(row.id.clone());
                }
                let size = bytes.map(human_bytes).unwrap_or_default();
                let resumed = if *partial > 0 {
                    format!(", {} already here", human_bytes(*partial))
                } else {
                    String::new()
                };
                ui.label(
                    RichText::new(format!(
                        "{} · {size} from {host}{resumed} · checked before use · licence {}",
                        row.name, row.licence
                    ))
                    .weak(),
                );
            }
            RowDownload::Unavailable => {}
        }
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            // Centre the pair of links.
            ui.add_space((ui.available_width() - 300.0).max(0.0) / 2.0);
            if ui.link("Import a model file…").clicked() {
                action = ModelsAction::Import;
            }
            ui.label("·");
            if ui.link("See all models").clicked() {
                action = ModelsAction::ShowModels;
            }
        });
    });
    action
}
