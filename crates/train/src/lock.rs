//! The run directory's lock: one `musicdiff train` per run directory at a time. The lock is an
//! OS advisory lock (`flock` on Unix) on `RUN/lock`, held for as long as the [`RunLock`] lives;
//! the file holds the owner's pid, for the message a second run gets. The OS drops the lock when
//! its process ends however it ends, so a lock file left behind by a killed run (`kill -9`, a
//! power cut) is not locked: the next run takes it over and says so. A run that ends normally
//! empties the file before it lets go, so only an abandoned lock still names a pid.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};

/// The lock file's name inside the run directory.
pub const LOCK_FILE: &str = "lock";

/// The held lock of a run directory; released (and the file emptied) on drop.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

/// What taking the lock found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// No one had held it, or its last holder ended normally.
    Free,
    /// A lock file still naming this pid, whose process no longer holds the lock (it was
    /// killed or crashed).
    Stale(String),
}

impl RunLock {
    /// Takes the lock of the run directory `run` (which must exist), or refuses with
    /// [`TrainError::RunInUse`] naming the holder's pid while another process holds it.
    pub fn take(run: &Path) -> Result<(Self, Taken)> {
        let path = run.join(LOCK_FILE);
        let io = |e| TrainError::io(&path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let mut previous = String::new();
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let _ = file.read_to_string(&mut previous);
                let pid = previous.trim();
                return Err(TrainError::RunInUse {
                    path: run.to_path_buf(),
                    pid: if pid.is_empty() { "unknown" } else { pid }.to_string(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.read_to_string(&mut previous).map_err(io)?;
        let taken = match previous.trim() {
            "" => Taken::Free,
            pid => Taken::Stale(pid.to_string()),
        };
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok((Self { file, path }, taken))
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Emptied while still held, so the next run does not take a normal end for a crash.
        // The file itself stays: deleting it would let a waiting opener lock an unlinked file
        // while a third process creates and locks a new one.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_train_on_a_locked_run_is_refused() {
        let run = tempfile::tempdir().unwrap();
        let (held, taken) = RunLock::take(run.path()).unwrap();
        assert_eq!(taken, Taken::Free);
        let e = RunLock::take(run.path()).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, TrainError::RunInUse { .. }), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id()))
                && msg.contains(&run.path().display().to_string())
                && !msg.contains('\n'),
            "{msg}"
        );
        // Released on drop: the next run takes it without a note.
        drop(held);
        let (_again, taken) = RunLock::take(run.path()).unwrap();
        assert_eq!(taken, Taken::Free);
    }

    #[test]
    fn a_stale_lock_of_a_killed_run_is_taken_over() {
        let run = tempfile::tempdir().unwrap();
        // A lock file left by a process that no longer exists (as after `kill -9`).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        std::fs::write(run.path().join(LOCK_FILE), format!("{dead}\n")).unwrap();
        let (lock, taken) = RunLock::take(run.path()).unwrap();
        assert_eq!(taken, Taken::Stale(dead.to_string()));
        let now = std::fs::read_to_string(lock.path()).unwrap();
        assert_eq!(now.trim(), std::process::id().to_string());
    }
}
