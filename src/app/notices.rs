//! Messages to the user: errors that kept the current work, warnings, confirmations.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub level: Level,
    pub text: String,
}

/// The messages shown in the banner (errors, warnings) and the status bar (all).
#[derive(Debug, Default)]
pub struct Notices {
    list: Vec<Notice>,
}

/// Older messages are dropped beyond this many.
const MAX_NOTICES: usize = 20;

impl Notices {
    pub fn push(&mut self, level: Level, text: impl Into<String>) {
        let text = text.into();
        match level {
            Level::Error => tracing::error!("{text}"),
            Level::Warning => tracing::warn!("{text}"),
            Level::Info => tracing::info!("{text}"),
        }
        // The same warning repeated (e.g. every frame of a drag) is shown once.
        if self.list.last().is_some_and(|n| n.level == level && n.text == text) {
            return;
        }
        self.list.push(Notice { level, text });
        if self.list.len() > MAX_NOTICES {
            self.list.remove(0);
        }
    }

    pub fn error(&mut self, text: impl Into<String>) {
        self.push(Level::Error, text);
    }

    pub fn warn(&mut self, text: impl Into<String>) {
        self.push(Level::Warning, text);
    }

    pub fn info(&mut self, text: impl Into<String>) {
        self.push(Level::Info, text);
    }

    pub fn all(&self) -> &[Notice] {
        &self.list
    }

    pub fn last(&self) -> Option<&Notice> {
        self.list.last()
    }

    /// The errors and warnings the banner shows.
    pub fn alerts(&self) -> impl Iterator<Item = (usize, &Notice)> {
        self.list.iter().enumerate().filter(|(_, n)| n.level != Level::Info)
    }

    pub fn dismiss(&mut self, index: usize) {
        if index < self.list.len() {
            self.list.remove(index);
        }
    }
}
