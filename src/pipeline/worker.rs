//! Runs a generation on a background thread: a request in, [`Event`]s out over a crossbeam
//! channel, cancel through a token. The UI never blocks: it polls `events` each frame and gets
//! a repaint call whenever something arrives.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{unbounded, Receiver, Sender};

use super::cancel::CancelToken;
use super::events::{Event, Generated, Progress};
use super::PipelineError;

/// Called after every event so a UI can wake up (e.g. `egui::Context::request_repaint`).
pub type Notify = Arc<dyn Fn() + Send + Sync>;

/// Where a running job reports to.
pub struct Reporter {
    tx: Sender<Event>,
    notify: Option<Notify>,
    cancel: CancelToken,
    /// Whether the listener shows step previews (a headless run does not).
    previews: bool,
}

impl Reporter {
    pub fn send(&self, event: Event) {
        // A dropped receiver means nobody is listening any more; the run still finishes cleanly.
        let _ = self.tx.send(event);
        if let Some(n) = &self.notify {
            n();
        }
    }

    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// `Err(Cancelled)` once the user asked to stop: call between steps and phases.
    pub fn check_cancelled(&self) -> Result<(), PipelineError> {
        if self.cancel.is_cancelled() {
            Err(PipelineError::Cancelled)
        } else {
            Ok(())
        }
    }
}

impl Progress for Reporter {
    fn event(&self, event: Event) {
        self.send(event);
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    fn wants_previews(&self) -> bool {
        self.previews
    }
}

/// A running (or finished) generation.
pub struct Generation {
    pub events: Receiver<Event>,
    cancel: CancelToken,
    handle: Option<JoinHandle<()>>,
}

impl Generation {
    /// Starts `job` on its own thread. Its result becomes the last event: `Finished`, `Failed`
    /// (errors and panics, e.g. a GPU out of memory, as a message) or `Cancelled`.
    pub fn spawn<F>(job: F, notify: Option<Notify>) -> Self
    where
        F: FnOnce(&Reporter) -> Result<Generated, PipelineError> + Send + 'static,
    {
        Self::spawn_with(job, notify, true)
    }

    /// [`Self::spawn`] for a listener that shows no step previews (the CLI): the run skips
    /// making them, and with them its one per-step read-back from the device.
    pub fn spawn_headless<F>(job: F) -> Self
    where
        F: FnOnce(&Reporter) -> Result<Generated, PipelineError> + Send + 'static,
    {
        Self::spawn_with(job, None, false)
    }

    fn spawn_with<F>(job: F, notify: Option<Notify>, previews: bool) -> Self
    where
        F: FnOnce(&Reporter) -> Result<Generated, PipelineError> + Send + 'static,
    {
        let (tx, rx) = unbounded();
        let cancel = CancelToken::new();
        let reporter = Reporter { tx, notify, cancel: cancel.clone(), previews };
        let handle = std::thread::Builder::new()
            .name("tora-generate".into())
            .spawn(move || {
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| job(&reporter)));
                let last = match outcome {
                    Ok(Ok(generated)) => Event::Finished(Box::new(generated)),
                    Ok(Err(PipelineError::Cancelled)) => Event::Cancelled,
                    Ok(Err(e)) => Event::Failed(e.to_string()),
                    Err(panic) => Event::Failed(panic_message(panic)),
                };
                reporter.send(last);
            })
            .expect("spawning the generation thread");
        Generation { events: rx, cancel, handle: Some(handle) }
    }

    /// Asks the run to stop; it does so within one denoising step.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    pub fn is_running(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Waits for the thread (after a terminal event it ends at once).
    pub fn join(mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        // Dropping a running generation cancels it; the thread ends on its own.
        self.cancel.cancel();
    }
}

/// A panic's message, with a hint when it looks like the device ran out of memory.
fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "the generation stopped unexpectedly".into());
    let lower = text.to_lowercase();
    if lower.contains("out of memory") || lower.contains("outofmemory") || lower.contains("allocation") {
        format!(
            "the device ran out of memory ({text}); try a smaller size or fewer frames, f16 on the GPU, or the CPU backend"
        )
    } else if lower.contains("device lost") || lower.contains("devicelost") || lower.contains("device was lost") {
        format!(
            "the GPU device was lost ({text}: a driver reset or a removed GPU); run again, or choose the CPU \
             backend if it keeps happening"
        )
    } else {
        format!("internal error: {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::RgbFrames;
    use std::time::Duration;

    fn empty_output() -> Generated {
        Generated {
            frames: RgbFrames { width: 1, height: 1, fps: 8.0, frames: vec![vec![0, 0, 0]] },
            phases: vec![],
            elapsed: Duration::ZERO,
        }
    }

    fn drain(g: &Generation) -> Vec<Event> {
        let mut out = Vec::new();
        while let Ok(e) = g.events.recv_timeout(Duration::from_secs(10)) {
            let done = e.is_terminal();
            out.push(e);
            if done {
                break;
            }
        }
        out
    }

    #[test]
    fn finishes_with_the_result() {
        let g = Generation::spawn(|_| Ok(empty_output()), None);
        let events = drain(&g);
        assert!(matches!(events.last(), Some(Event::Finished(_))));
    }

    #[test]
    fn only_a_listener_that_shows_previews_asks_for_them() {
        let seen = |g: Generation| match drain(&g).last() {
            Some(Event::Failed(m)) => m.clone(),
            other => panic!("{other:?}"),
        };
        let report = |r: &Reporter| -> Result<Generated, PipelineError> {
            Err(PipelineError::Runtime(format!("previews {}", r.wants_previews())))
        };
        assert_eq!(seen(Generation::spawn(report, None)), "previews true");
        assert_eq!(seen(Generation::spawn_headless(report)), "previews false");
    }

    #[test]
    fn cancel_takes_effect_at_the_next_check() {
        let (go_tx, go_rx) = crossbeam_channel::bounded::<()>(0);
        let g = Generation::spawn(
            move |r| {
                for i in 0..1000 {
                    if i == 1 {
                        let _ = go_rx.recv(); // wait until the test has cancelled
                    }
                    r.check_cancelled()?;
                    r.send(Event::Step { index: i, total: 1000, timestep: 0, preview: None });
                }
                Ok(empty_output())
            },
            None,
        );
        g.cancel();
        let _ = go_tx.send(());
        let events = drain(&g);
        assert!(matches!(events.last(), Some(Event::Cancelled)), "{:?}", events.last());
        assert!(events.len() <= 3, "ran on after cancel: {} events", events.len());
    }

    #[test]
    fn a_panic_becomes_a_failure_message() {
        let g = Generation::spawn(|_| panic!("wgpu: Out of memory allocating 4 GiB"), None);
        let events = drain(&g);
        match events.last() {
            Some(Event::Failed(m)) => assert!(m.contains("ran out of memory"), "{m}"),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn notify_is_called_per_event() {
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = count.clone();
        let g = Generation::spawn(
            |r| {
                r.send(Event::Step { index: 0, total: 1, timestep: 999, preview: None });
                Ok(empty_output())
            },
            Some(Arc::new(move || {
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })),
        );
        let events = drain(&g);
        assert_eq!(events.len(), 2);
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
