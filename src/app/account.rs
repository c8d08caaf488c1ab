//! The Account pane: the consent toggle first, then what is stored locally,
//! deleting it, and the consent history.

use egui::RichText;

use super::command::Command;
use crate::privacy::Privacy;
use crate::privacy::schedule::Cleanup;
use crate::privacy::store::{ItemKind, RETENTION, format_age};
use crate::privacy::uploads::UploaderState;

/// The toggle's label, in plain words (tests find it by this text).
pub const CONSENT_LABEL: &str = "Allow my images to be used to improve models";
/// Beside the toggle when an opt-out could not be written in full.
pub const NOT_SAVED_RETRY: &str = "Not saved — retry";

/// The toggle's state in words, under it.
pub const CONSENT_OFF_WORDS: &str =
    "Off — nothing leaves this computer; nothing is kept over 24 hours";
pub const CONSENT_ON_WORDS: &str =
    "On — your images and corrected masks may be sent to improve the models";

/// A switch with its label, one control: larger than body text, reachable
/// with Tab and toggled with Space or Enter, and announced to screen readers
/// as a switch named exactly as the label reads.
fn consent_switch(ui: &mut egui::Ui, on: &mut bool) -> egui::Response {
    let text = RichText::new(CONSENT_LABEL).size(18.0).strong();
    let galley = egui::WidgetText::from(text).into_galley(
        ui,
        Some(egui::TextWrapMode::Extend),
        f32::INFINITY,
        egui::TextStyle::Body,
    );
    let track = egui::vec2(52.0, 28.0);
    let gap = 10.0;
    let size = egui::vec2(
        track.x + gap + galley.size().x,
        track.y.max(galley.size().y),
    );
    let (rect, mut response) = ui.allocate_exact_size(size, egui::Sense::click());
    if response.clicked() {
        *on = !*on;
        response.mark_changed();
    }
    response.widget_info(|| {
        egui::WidgetInfo::selected(egui::Role::Switch, ui.is_enabled(), *on, CONSENT_LABEL)
    });
    if ui.is_rect_visible(rect) {
        let how_on = ui.ctx().animate_bool_responsive(response.id, *on);
        let visuals = ui.style().interact_selectable(&response, *on);
        let track_rect = egui::Rect::from_min_size(
            egui::pos2(rect.left(), rect.center().y - track.y / 2.0),
            track,
        );
        let radius = track.y / 2.0;
        let fill = if *on {
            ui.visuals().selection.bg_fill
        } else {
            ui.visuals().widgets.inactive.bg_fill
        };
        ui.painter().rect(
            track_rect,
            radius,
            fill,
            visuals.bg_stroke,
            egui::StrokeKind::Inside,
        );
        let x = egui::lerp(
            (track_rect.left() + radius)..=(track_rect.right() - radius),
            how_on,
        );
        ui.painter().circle(
            egui::pos2(x, track_rect.center().y),
            radius * 0.75,
            ui.visuals().widgets.active.fg_stroke.color,
            visuals.fg_stroke,
        );
        if response.has_focus() {
            ui.painter().rect_stroke(
                rect.expand(3.0),
                4.0,
                ui.visuals().selection.stroke,
                egui::StrokeKind::Outside,
            );
        }
        let text_pos = egui::pos2(
            track_rect.right() + gap,
            rect.center().y - galley.size().y / 2.0,
        );
        ui.painter()
            .galley(text_pos, galley, ui.visuals().text_color());
    }
    response
}

/// The pane; what the user asked for (consent, deleting) comes back as a
/// command for the app to apply.
pub fn account_ui(
    ui: &mut egui::Ui,
    privacy: &Privacy,
    confirm_delete: &mut bool,
    uploader: UploaderState,
) -> Option<Command> {
    // First, and prominent: the single gate.
    let mut action = consent_section(ui, privacy);
    ui.add_space(16.0);
    if let Some(purge) = stored_section(ui, privacy, confirm_delete) {
        action = Some(purge);
    }
    ui.add_space(16.0);
    history_section(ui, privacy);
    if privacy.opted_in() {
        ui.add_space(16.0);
        uploads_ui(ui, privacy, uploader);
    }
    action
}

/// The switch, what it means, where samples go and how clean-up happens.
fn consent_section(ui: &mut egui::Ui, privacy: &Privacy) -> Option<Command> {
    let mut action = None;
    let mut opted_in = privacy.opted_in();
    ui.horizontal(|ui| {
        let toggle = consent_switch(ui, &mut opted_in);
        if toggle.changed() {
            action = Some(Command::SetConsent(opted_in));
        }
        // An opt-out in force that could not be written in full.
        if privacy.unsaved_opt_out.is_some() {
            let retry = ui
                .button(RichText::new(NOT_SAVED_RETRY).color(ui.visuals().warn_fg_color))
                .on_hover_text(privacy.unsaved_opt_out.clone().unwrap_or_default());
            if retry.clicked() {
                action = Some(Command::SetConsent(false));
            }
        }
    });
    if privacy.unsaved_opt_out.is_some() {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            "You are opted out and nothing is uploaded, but the choice could not be saved in full.",
        );
    }
    let state = if privacy.opted_in() {
        CONSENT_ON_WORDS
    } else {
        CONSENT_OFF_WORDS
    };
    ui.label(RichText::new(state).size(16.0));
    ui.add_space(4.0);
    ui.label("Off: nothing is uploaded, and everything this app keeps about your images is deleted within 24 hours, whether or not the app is running.");
    ui.label("On: your images and corrected masks may be sent to improve the models, and local data is kept up to the size limit below.");
    match &privacy.upload_endpoint {
        Ok(endpoint) => ui.label(format!("Samples go to: {}", endpoint.host)),
        Err(e) => ui.label(format!("Samples go nowhere: {e}")),
    };
    match &privacy.cleanup {
        Cleanup::Scheduled { .. } => {
            ui.label(format!(
                "Automatic clean-up: {}",
                privacy.cleanup.describe()
            ));
        }
        Cleanup::SessionOnly { why } => {
            ui.label(format!("Automatic clean-up: none ({why})."));
            if !privacy.opted_in() {
                ui.label("So recent work is not restored: everything the app keeps is deleted when it closes, and anything a crash left is deleted at the next start.");
            }
        }
    }
    action
}

/// What is stored, when it goes, and deleting it (asked twice).
fn stored_section(
    ui: &mut egui::Ui,
    privacy: &Privacy,
    confirm_delete: &mut bool,
) -> Option<Command> {
    let mut action = None;
    ui.heading("Stored on this computer");
    let stats = privacy.store.stats();
    if stats.items == 0 {
        ui.label("Nothing is stored.");
    } else {
        ui.label(format!(
            "{} item{}, {:.1} MB, oldest {}",
            stats.items,
            if stats.items == 1 { "" } else { "s" },
            stats.bytes as f64 / 1e6,
            stats.oldest_age.map(format_age).unwrap_or_default()
        ));
        if !privacy.opted_in()
            && let Some(age) = stats.oldest_age
        {
            let left = (RETENTION - age).max(chrono::TimeDelta::zero());
            ui.label(format!(
                "The oldest item is deleted within {}.",
                format_age(left)
            ));
        } else {
            ui.label(format!(
                "Kept while you allow it, up to {:.1} GB.",
                privacy.settings.cache_cap_bytes as f64 / 1e9
            ));
        }
    }
    ui.label(format!("Folder: {}", privacy.store.root().display()));
    ui.add_space(8.0);
    if *confirm_delete {
        ui.horizontal(|ui| {
            ui.label("Delete everything stored locally? Files you exported are not touched.");
            if ui.button("Delete").clicked() {
                *confirm_delete = false;
                action = Some(Command::PurgeAll);
            }
            if ui.button("Keep").clicked() {
                *confirm_delete = false;
            }
        });
    } else if ui.button("Delete all local data now").clicked() {
        *confirm_delete = true;
    }
    action
}

fn history_section(ui: &mut egui::Ui, privacy: &Privacy) {
    ui.heading("Consent history");
    let ledger = privacy.ledger();
    if ledger.is_empty() {
        ui.label("You have not changed this setting.");
    }
    for record in ledger.iter().rev() {
        ui.label(format!(
            "{} · {} · app {}",
            record.time.format("%Y-%m-%d %H:%M UTC"),
            if record.opted_in {
                "allowed"
            } else {
                "withdrawn"
            },
            record.app_version
        ));
    }
}

/// The upload queue and what has been sent (only shown when opted in).
fn uploads_ui(ui: &mut egui::Ui, privacy: &Privacy, state: UploaderState) {
    ui.heading("Uploads");
    ui.label("Images you export or copy are sent with their final mask and the model's name; nothing else about you or this computer.");
    let now = privacy.now();
    let queued = privacy.store.list_kind(ItemKind::UploadQueue);
    if let Some(label) = &state.in_flight {
        ui.label(format!("Sending {label}…"));
    }
    if queued.is_empty() {
        ui.label("Nothing is waiting to be sent.");
    } else {
        ui.label(format!("Waiting to be sent ({}):", queued.len()));
        for item in &queued {
            ui.label(format!(
                "  {} · {:.1} MB · queued {} ago",
                item.label,
                item.size as f64 / 1e6,
                format_age(now - item.created)
            ));
        }
    }
    if let Some(error) = &state.last_error {
        ui.colored_label(ui.visuals().warn_fg_color, error);
    }
    let sent: Vec<_> = privacy
        .store
        .list_kind(ItemKind::Log)
        .into_iter()
        .filter(|i| i.label.starts_with("sent "))
        .collect();
    if !sent.is_empty() {
        ui.label("Sent:");
        for item in sent.iter().rev() {
            ui.label(format!(
                "  {} · {}",
                item.label.trim_start_matches("sent "),
                item.created.format("%Y-%m-%d %H:%M UTC")
            ));
        }
    }
}

/// Light, dark, or as the system is set (the default).
pub fn appearance_ui(ui: &mut egui::Ui) {
    use egui::ThemePreference;
    ui.heading("Appearance");
    let mut preference = ui.options(|o| o.theme_preference);
    let before = preference;
    ui.horizontal(|ui| {
        ui.label("Theme");
        for (choice, name, hint) in [
            (
                ThemePreference::System,
                "System",
                "Light or dark as the system is set",
            ),
            (ThemePreference::Light, "Light", "Always light"),
            (ThemePreference::Dark, "Dark", "Always dark"),
        ] {
            ui.selectable_value(&mut preference, choice, name)
                .on_hover_text(hint);
        }
    });
    if preference != before {
        ui.ctx().set_theme(preference);
    }
    ui.weak(format!(
        "Sizes follow the display's scale ({:.0} %).",
        ui.ctx().pixels_per_point() * 100.0
    ));
}
