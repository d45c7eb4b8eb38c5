//! Crash-safe file output: write into a temporary file beside the target, then rename it over
//! the target. A failure (or a crash) part-way leaves no partial output file behind; the
//! temporary file is removed when it is dropped.
//!
//! [`OutputSet`] does the same for several files that belong together (a WAV with its picture
//! and sidecar, a picture with its matrix): every file is written to its temporary first, and
//! only when all of them have been written are they renamed into place, so a failure in any of
//! them leaves none of the targets created or replaced.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::TempPath;

use crate::error::WriteError;

/// Writes `path` atomically. `fill` receives a buffered writer (also `Seek`) on a temporary
/// file in the same directory; on success the file is flushed, synced and renamed to `path`.
/// `fill` reports in the caller's error type, which holds this crate's [`WriteError`].
pub fn write_atomic<E, F>(path: &Path, fill: F) -> Result<(), E>
where
    E: From<WriteError>,
    F: FnOnce(&mut BufWriter<&mut File>) -> Result<(), E>,
{
    let mut set = OutputSet::new();
    set.write(path, fill)?;
    set.commit().map_err(E::from)
}

/// Writes `bytes` to `path` atomically: [`write_atomic`] with the whole content at hand, the
/// case of nearly every caller.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_atomic(path, |w| {
        w.write_all(bytes).map_err(|e| WriteError::new(path, &e))
    })
}

/// Output files written together: [`OutputSet::write`] puts each one's content into a
/// temporary file beside its target, [`OutputSet::commit`] renames them all into place.
/// Dropping the set without committing (after an error) removes the temporary files and
/// leaves every target as it was.
#[derive(Debug, Default)]
pub struct OutputSet {
    /// Written temporaries and their targets, in the order they were written.
    staged: Vec<(TempPath, PathBuf)>,
}

impl OutputSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// The targets written so far, in order.
    pub fn targets(&self) -> impl Iterator<Item = &Path> {
        self.staged.iter().map(|(_, p)| p.as_path())
    }

    /// Writes the content of `path` into a temporary file in the same directory: `fill`
    /// receives a buffered writer (also `Seek`); the file is flushed and synced. Nothing
    /// appears at `path` until [`Self::commit`].
    pub fn write<E, F>(&mut self, path: &Path, fill: F) -> Result<(), E>
    where
        E: From<WriteError>,
        F: FnOnce(&mut BufWriter<&mut File>) -> Result<(), E>,
    {
        let failed = |e: &std::io::Error| E::from(WriteError::new(path, e));
        if path.is_dir() {
            return Err(E::from(WriteError {
                path: path.to_path_buf(),
                detail: "it is a directory".into(),
                kind: std::io::ErrorKind::IsADirectory,
            }));
        }
        if self.targets().any(|t| t == path) {
            return Err(E::from(WriteError {
                path: path.to_path_buf(),
                detail: "it is named twice among the outputs".into(),
                kind: std::io::ErrorKind::InvalidInput,
            }));
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".musicdiff-")
            .suffix(".part")
            .tempfile_in(dir)
            .map_err(|e| failed(&e))?;
        // Temporary files are created private (0600); outputs get the usual 0644.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(|e| failed(&e))?;
        }
        {
            let mut w = BufWriter::new(tmp.as_file_mut());
            fill(&mut w)?;
            w.flush().map_err(|e| failed(&e))?;
        }
        tmp.as_file().sync_all().map_err(|e| failed(&e))?;
        self.staged.push((tmp.into_temp_path(), path.to_path_buf()));
        Ok(())
    }

    /// Renames every written file into place. The first file written (the main output, by
    /// convention) is renamed last, so that if a rename fails the main output is neither
    /// created nor replaced; the temporaries not yet renamed are removed.
    pub fn commit(self) -> Result<(), WriteError> {
        for (tmp, path) in self.staged.into_iter().rev() {
            tmp.persist(&path)
                .map_err(|e| WriteError::new(&path, &e.error))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_bytes_replaces_a_file_whole_and_names_a_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        write_bytes(&path, b"old").unwrap();
        write_bytes(&path, b"new content").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new content");
        let missing = dir.path().join("no/such/f.txt");
        let err = write_bytes(&missing, b"x").unwrap_err();
        assert!(
            err.is_bad_input() && err.to_string().contains("does not exist"),
            "{err}"
        );
    }

    #[test]
    fn failure_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        let err = write_atomic(&target, |w| {
            w.write_all(b"half").unwrap();
            Err(WriteError::new(
                &target,
                &std::io::Error::other("forced failure"),
            ))
        });
        assert!(err.is_err());
        assert!(!target.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn success_replaces_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        std::fs::write(&target, b"old").unwrap();
        write_atomic(&target, |w| {
            w.write_all(b"new").map_err(|e| WriteError::new("x", &e))
        })
        .unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&target).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    fn put(set: &mut OutputSet, path: &Path, bytes: &'static [u8]) -> Result<(), WriteError> {
        set.write(path, |w| {
            w.write_all(bytes).map_err(|e| WriteError::new("x", &e))
        })
    }

    #[test]
    fn an_output_set_appears_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.wav"), dir.path().join("a.json"));
        let mut set = OutputSet::new();
        put(&mut set, &a, b"wav").unwrap();
        put(&mut set, &b, b"json").unwrap();
        assert!(!a.exists() && !b.exists());
        set.commit().unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), b"wav");
        assert_eq!(std::fs::read(&b).unwrap(), b"json");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_failed_member_leaves_no_file_of_the_set_and_keeps_the_old_targets() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("a.wav");
        std::fs::write(&wav, b"input").unwrap();
        // A directory where the picture should go: writing it fails (even as root).
        let png = dir.path().join("a.png");
        std::fs::create_dir(&png).unwrap();
        let mut set = OutputSet::new();
        put(&mut set, &wav, b"new").unwrap();
        assert!(put(&mut set, &png, b"png").is_err());
        drop(set);
        assert_eq!(std::fs::read(&wav).unwrap(), b"input");
        assert!(png.is_dir());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        // The same target twice is refused.
        let mut set = OutputSet::new();
        put(&mut set, &wav, b"1").unwrap();
        assert!(put(&mut set, &wav, b"2").is_err());
    }
}
