//! Undo/redo of whole-scene snapshots. Edits are committed per gesture: the studio compares the
//! scene with the last committed one once no pointer button is held, so every edit (canvas,
//! panels, timeline) is undoable without each widget having to know about history.

use crate::trajectory::Scene;

/// Snapshots kept for undo; older ones are dropped.
const MAX_UNDO: usize = 200;

#[derive(Debug, Default)]
pub struct History {
    undo: Vec<Scene>,
    redo: Vec<Scene>,
    /// The scene as of the last commit: what an undo returns to after an edit.
    committed: Option<Scene>,
}

impl History {
    pub fn new(scene: &Scene) -> Self {
        History { undo: Vec::new(), redo: Vec::new(), committed: Some(scene.clone()) }
    }

    /// Records `scene` if it differs from the last commit; returns whether it did.
    pub fn commit(&mut self, scene: &Scene) -> bool {
        match &self.committed {
            Some(last) if last == scene => false,
            _ => {
                if let Some(last) = self.committed.replace(scene.clone()) {
                    self.undo.push(last);
                    if self.undo.len() > MAX_UNDO {
                        self.undo.remove(0);
                    }
                }
                self.redo.clear();
                true
            }
        }
    }

    /// Forgets all history and starts from `scene` (a newly opened project).
    pub fn reset(&mut self, scene: &Scene) {
        *self = History::new(scene);
    }

    /// The scene before the last commit, if any; `current` becomes redoable.
    pub fn undo(&mut self, current: &Scene) -> Option<Scene> {
        self.commit(current);
        let previous = self.undo.pop()?;
        self.redo.push(current.clone());
        self.committed = Some(previous.clone());
        Some(previous)
    }

    pub fn redo(&mut self, current: &Scene) -> Option<Scene> {
        let next = self.redo.pop()?;
        self.undo.push(current.clone());
        self.committed = Some(next.clone());
        Some(next)
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene(frames: u32) -> Scene {
        Scene { frames, ..Scene::default() }
    }

    #[test]
    fn undo_and_redo_walk_the_commits() {
        let mut h = History::new(&scene(10));
        assert!(!h.commit(&scene(10)), "unchanged scene is not an edit");
        assert!(h.commit(&scene(11)));
        assert!(h.commit(&scene(12)));
        assert_eq!(h.undo(&scene(12)), Some(scene(11)));
        assert_eq!(h.undo(&scene(11)), Some(scene(10)));
        assert_eq!(h.undo(&scene(10)), None);
        assert_eq!(h.redo(&scene(10)), Some(scene(11)));
        assert!(h.commit(&scene(20)), "a new edit");
        assert!(!h.can_redo(), "a new edit clears redo");
        assert_eq!(h.undo(&scene(20)), Some(scene(11)));
    }

    #[test]
    fn an_uncommitted_edit_is_undone_too() {
        let mut h = History::new(&scene(10));
        assert_eq!(h.undo(&scene(15)), Some(scene(10)));
        assert_eq!(h.redo(&scene(10)), Some(scene(15)));
    }
}
