//! The one seam the studio's own files are written through (projects, autosave, takes, PNG
//! frames), so a full disk can be simulated: [`simulate_full`] makes every write under a folder
//! fail with ENOSPC once a byte budget is spent, exactly as the kernel would report it (the bytes
//! that fit are written first). Tests use it to prove that no earlier file is lost and no
//! half-written file passes for a good one; outside tests no budget is set and writes go straight
//! to the file.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Folders whose writes draw on a byte budget.
static BUDGETS: Mutex<Vec<(PathBuf, Arc<Mutex<u64>>)>> = Mutex::new(Vec::new());
/// `BUDGETS.len()`, read without the lock on every write.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// While alive, writes to files under its folder fail as on a full disk; dropping it frees the disk.
#[must_use = "the disk is full only while the guard lives"]
pub struct FullDisk {
    dir: PathBuf,
}

/// Makes writes under `dir` fail with "No space left on device" after `bytes_left` more bytes.
pub fn simulate_full(dir: &Path, bytes_left: u64) -> FullDisk {
    let mut budgets = BUDGETS.lock().unwrap_or_else(|e| e.into_inner());
    budgets.push((dir.to_path_buf(), Arc::new(Mutex::new(bytes_left))));
    ACTIVE.store(budgets.len(), Ordering::SeqCst);
    FullDisk { dir: dir.to_path_buf() }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        let mut budgets = BUDGETS.lock().unwrap_or_else(|e| e.into_inner());
        budgets.retain(|(d, _)| d != &self.dir);
        ACTIVE.store(budgets.len(), Ordering::SeqCst);
    }
}

fn budget_for(path: &Path) -> Option<Arc<Mutex<u64>>> {
    if ACTIVE.load(Ordering::SeqCst) == 0 {
        return None;
    }
    let budgets = BUDGETS.lock().unwrap_or_else(|e| e.into_inner());
    budgets.iter().find(|(dir, _)| path.starts_with(dir)).map(|(_, b)| b.clone())
}

/// A file being written (created or truncated), subject to a simulated full disk.
pub struct DiskFile {
    file: File,
    budget: Option<Arc<Mutex<u64>>>,
}

/// Creates (or truncates) `path` for writing through the seam.
pub fn create(path: &Path) -> io::Result<DiskFile> {
    let budget = budget_for(path);
    if budget.as_ref().is_some_and(|b| *b.lock().unwrap_or_else(|e| e.into_inner()) == 0) {
        return Err(no_space());
    }
    Ok(DiskFile { file: File::create(path)?, budget })
}

fn no_space() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

impl DiskFile {
    /// Flushes the data to the device (a full disk may first report here on real file systems).
    pub fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()
    }
}

impl Write for DiskFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(budget) = &self.budget else { return self.file.write(buf) };
        let mut left = budget.lock().unwrap_or_else(|e| e.into_inner());
        if *left == 0 && !buf.is_empty() {
            return Err(no_space());
        }
        let n = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
        let written = self.file.write(&buf[..n])?;
        *left -= written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_fail_with_enospc_once_the_budget_is_spent_and_only_under_the_folder() {
        let full = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let guard = simulate_full(full.path(), 5);
        let mut f = create(&full.path().join("a")).unwrap();
        let err = f.write_all(b"0123456789").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
        assert_eq!(std::fs::read(full.path().join("a")).unwrap(), b"01234", "what fits is written");
        assert!(create(&full.path().join("b")).is_err(), "no space for a new file either");
        create(&other.path().join("c")).unwrap().write_all(b"0123456789").unwrap();
        drop(guard);
        create(&full.path().join("d")).unwrap().write_all(b"0123456789").unwrap();
    }
}
