//! The render queue in the Generate tab (issue 16): variants of the form's settings queued in one
//! click (prompts, a seed sweep, a trajectory-strength sweep), run one after another on the
//! worker; each finished one lands in Takes with its batch, which Takes shows as a grid. The
//! expansion and the queue's bookkeeping are in `pipeline::queue`; this file sends and shows.

use eframe::egui;

use crate::pipeline::queue::{expand, ItemStatus, RenderQueue};

use super::model_manager::ERROR_COLOUR;
use super::StudioApp;

impl StudioApp {
    // ---- what tests and scripts call ---------------------------------------------------------

    pub fn render_queue(&self) -> &RenderQueue {
        &self.generate.queue
    }

    /// Queues every variant of the form's settings its variant fields describe; returns how many,
    /// or why none (the queue is unchanged then). They start as soon as nothing else runs.
    pub fn queue_variants(&mut self) -> Result<usize, String> {
        let variants = expand(&self.state.generate.settings, &self.state.generate.variants)
            .map_err(|e| format!("Cannot queue: {e}"))?;
        let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let taken = |name: &String| self.generate.queue.items().iter().any(|i| &i.batch == name);
        let batch = (0..).map(|n| format!("batch-{created}-{n:02}")).find(|b| !taken(b)).unwrap_or_default();
        let count = variants.len();
        self.generate.queue.push_batch(&batch, variants);
        self.notices.info(format!("queued {count} variant(s) as {batch}"));
        Ok(count)
    }

    /// Removes queued item `index` if it has not started.
    pub fn remove_queued(&mut self, index: usize) -> bool {
        self.generate.queue.remove_pending(index)
    }

    /// Cancels every waiting variant and the running one.
    pub fn cancel_queue(&mut self) {
        if self.generate.queue.cancel_all() {
            self.cancel_generation();
        }
    }

    // ---- internals ------------------------------------------------------------------------

    /// Starts the next waiting variant when nothing runs. One that cannot start stops the queue
    /// with one message (the same cause would stop every variant after it).
    pub(super) fn advance_queue(&mut self, ctx: &egui::Context) {
        if self.generate.running() {
            return;
        }
        let Some(item) = self.generate.queue.start_next().cloned() else { return };
        match self.build_request(&item.settings) {
            Ok(request) => self.spawn_generation(request, ctx, Some(item.batch)),
            Err(message) => {
                self.generate.queue.finish_running(ItemStatus::Failed(message.clone()));
                self.generate.queue.cancel_all();
                self.notices.error(format!("The queue stopped: {message}. The waiting variants were cancelled."));
            }
        }
    }

    pub(super) fn queue_section(&mut self, ui: &mut egui::Ui) {
        egui::CollapsingHeader::new("Queue variants").show(ui, |ui| {
            let v = &mut self.state.generate.variants;
            let label = ui.label("variant prompts (one per line; empty: the prompt above)");
            ui.add(egui::TextEdit::multiline(&mut v.prompts).desired_rows(2).desired_width(f32::INFINITY))
                .labelled_by(label.id);
            egui::Grid::new("variant sweeps").num_columns(2).show(ui, |ui| {
                let label = ui.label("seeds");
                ui.add(egui::TextEdit::singleline(&mut v.seeds).hint_text("42..46 or 1, 7, 9").desired_width(120.0))
                    .labelled_by(label.id);
                ui.end_row();
                let label = ui.label("strengths");
                ui.add(egui::TextEdit::singleline(&mut v.strengths).hint_text("0.5, 1, 1.5").desired_width(120.0))
                    .labelled_by(label.id)
                    .on_hover_text("trajectory strengths, each from 0 to 3");
                ui.end_row();
            });
            match expand(&self.state.generate.settings, &self.state.generate.variants) {
                Ok(variants) => {
                    let n = variants.len();
                    let text = if n == 1 { "Queue 1 variant".to_string() } else { format!("Queue {n} variants") };
                    if ui.button(text).clicked() {
                        let _ = self.queue_variants();
                    }
                }
                Err(e) => {
                    ui.colored_label(ERROR_COLOUR, e.to_string());
                }
            }
        });
        // Outside the header, so the queue's progress shows while the fields are folded away.
        self.queue_list(ui);
    }

    fn queue_list(&mut self, ui: &mut egui::Ui) {
        let queue = &self.generate.queue;
        if queue.items().is_empty() {
            return;
        }
        let mut remove = None;
        for (index, item) in queue.items().iter().enumerate() {
            ui.horizontal(|ui| {
                let status = match &item.status {
                    ItemStatus::Pending => "waiting",
                    ItemStatus::Running => "running",
                    ItemStatus::Done(Some(_)) => "done",
                    ItemStatus::Done(None) => "done (not kept)",
                    ItemStatus::Failed(_) => "failed",
                    ItemStatus::Cancelled => "cancelled",
                };
                if item.status == ItemStatus::Pending && ui.small_button("Remove").clicked() {
                    remove = Some(index);
                }
                let text = format!("{status}: {}", item.label(40));
                let (text, hover) = match &item.status {
                    ItemStatus::Failed(m) => (egui::RichText::new(text).color(ERROR_COLOUR), m.as_str()),
                    _ => (egui::RichText::new(text), item.batch.as_str()),
                };
                ui.add(egui::Label::new(text).truncate()).on_hover_text(hover);
            });
        }
        let (pending, running) = (queue.pending(), queue.running().is_some());
        ui.horizontal(|ui| {
            if ui.add_enabled(pending > 0 || running, egui::Button::new("Cancel all")).clicked() {
                self.cancel_queue();
            }
            if ui.button("Clear finished").clicked() {
                self.generate.queue.clear_finished();
            }
        });
        if let Some(index) = remove {
            self.remove_queued(index);
        }
    }
}
