//! The render queue and the grid of variants (issue 16), driven through the real app: variants
//! typed into the Generate tab and queued in one click, one removed, the rest run one after
//! another with the tiny fixture model, each landing in Takes, shown together in the grid.

use std::time::Duration;

use egui_kittest::kittest::Queryable as _;
use tora_studio::app::SideTab;
use tora_studio::pipeline::queue::ItemStatus;

use super::ui_generate::{click, fixture, pump_until, studio};
use super::ui_layout::scripted_runner;

fn type_into(h: &mut egui_kittest::Harness<tora_studio::app::StudioApp>, label: &str, text: &str) {
    h.get_by_label(label).focus();
    h.step();
    h.get_by_label(label).type_text(text);
    h.step();
}

#[test]
fn queued_variants_run_in_turn_land_in_takes_and_show_in_a_grid() {
    let Some((model, scene)) = fixture(false) else { return };
    let data = tempfile::tempdir().unwrap();
    let mut h = studio(scene, data.path());
    h.state_mut().generate_form_mut().model_dir = model.display().to_string();
    h.state_mut().generate_form_mut().settings.prompt = "a red ball".into();
    h.state_mut().generate_form_mut().settings.steps = 2;
    pump_until(&mut h, "the model scan", Duration::from_secs(60), |a| a.model_report().is_some_and(|r| r.usable()));

    click(&mut h, "Queue variants"); // unfold the variant fields
    type_into(&mut h, "seeds", "5..6");
    type_into(&mut h, "strengths", "0.5, 1.5");
    click(&mut h, "Queue 4 variants");
    let queue = h.state().render_queue().items().to_vec();
    assert_eq!(queue.len(), 4, "notices: {:?}", h.state().notices());
    assert_eq!(queue[0].status, ItemStatus::Running, "the first starts at once");
    assert!(h.state().generation_running());
    // The last one (seed 6, strength 1.5) is taken out before it starts.
    h.get_all_by_label("Remove").last().expect("pending items can be removed").click();
    h.run_steps(2);
    let seeds: Vec<(u64, f32)> =
        h.state().render_queue().items().iter().map(|i| (i.settings.seed, i.settings.motion.strength)).collect();
    assert_eq!(seeds, [(5, 0.5), (5, 1.5), (6, 0.5)]);
    assert!(h.query_all_by_label_contains("waiting: seed 6 · strength 0.5 · a red ball").next().is_some());

    pump_until(&mut h, "the queue", Duration::from_secs(900), |a| {
        a.render_queue().pending() == 0 && !a.generation_running()
    });
    let items = h.state().render_queue().items().to_vec();
    let ids: Vec<String> = items
        .iter()
        .map(|i| match &i.status {
            ItemStatus::Done(Some(id)) => id.clone(),
            other => panic!("{other:?}; notices {:?}", h.state().notices()),
        })
        .collect();
    let takes = h.state().takes().to_vec();
    assert_eq!(takes.len(), 3);
    for (item, id) in items.iter().zip(&ids) {
        let take = takes.iter().find(|t| &t.id == id).expect("each variant is a take");
        assert_eq!(take.settings, item.settings, "the take keeps its variant's settings");
        assert_eq!(take.batch.as_deref(), Some(item.batch.as_str()));
    }

    // Takes: the batch as a grid, every variant loaded and playing.
    h.state_mut().set_side_tab(SideTab::Takes);
    h.run_steps(2);
    click(&mut h, "Grid of 3 variants");
    pump_until(&mut h, "the grid's clips", Duration::from_secs(60), |a| {
        a.variant_grid().is_some_and(|(ids, playing)| ids.len() == 3 && playing == 3)
    });
    assert_eq!(h.state().variant_grid().map(|g| g.0), Some(ids));
    for label in ["seed 5 · strength 0.5", "seed 5 · strength 1.5", "seed 6 · strength 0.5"] {
        assert!(h.query_all_by_label_contains(label).next().is_some(), "the grid does not show {label:?}");
    }
    // Picking one puts its settings back into the form.
    h.state_mut().generate_form_mut().settings.seed = 99;
    h.get_all_by_label("Use").nth(1).expect("one Use per variant").click();
    h.run_steps(2);
    assert_eq!(h.state().generate_form().settings.seed, 5);
    assert_eq!(h.state().generate_form().settings.motion.strength, 1.5);
}

#[test]
fn cancel_all_stops_the_queue_and_a_bad_sweep_queues_nothing() {
    let Some((model, scene)) = fixture(false) else { return };
    let data = tempfile::tempdir().unwrap();
    let mut h = studio(scene, data.path());
    h.state_mut().set_generation_runner(scripted_runner(usize::MAX, Duration::from_millis(20)));
    h.state_mut().generate_form_mut().model_dir = model.display().to_string();
    h.state_mut().generate_form_mut().settings.steps = 1000;
    pump_until(&mut h, "the model scan", Duration::from_secs(60), |a| a.model_report().is_some_and(|r| r.usable()));

    // A range that runs backwards: said at once, no button, nothing queued.
    click(&mut h, "Queue variants");
    type_into(&mut h, "seeds", "9..3");
    assert!(h.query_all_by_label_contains("9..3 runs backwards").next().is_some());
    assert!(h.query_by_label("Queue 1 variant").is_none() && h.query_by_label("Queue 7 variants").is_none());
    assert!(h.state_mut().queue_variants().is_err());
    assert!(h.state().render_queue().items().is_empty());

    h.state_mut().generate_form_mut().variants.seeds = "1..3".into();
    h.run_steps(2);
    click(&mut h, "Queue 3 variants");
    pump_until(&mut h, "steps", Duration::from_secs(60), |a| a.generation_stats().steps > 0);
    click(&mut h, "Cancel all");
    pump_until(&mut h, "the cancel", Duration::from_secs(60), |a| !a.generation_running());
    h.run_steps(3);
    let statuses: Vec<ItemStatus> = h.state().render_queue().items().iter().map(|i| i.status.clone()).collect();
    assert_eq!(statuses, [ItemStatus::Cancelled, ItemStatus::Cancelled, ItemStatus::Cancelled]);
    assert!(!h.state().generation_running(), "nothing starts after Cancel all");
    assert!(h.state().takes().is_empty());
    click(&mut h, "Clear finished");
    assert!(h.state().render_queue().items().is_empty());
}
