//! Crash-safe file output: write into a temporary file beside the target, then rename it over
//! the target. A failure (or a crash) part-way leaves no partial output file behind; the
//! temporary file is removed when it is dropped.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::WriteError;

/// Writes `path` atomically. `fill` receives a buffered writer (also `Seek`) on a temporary
/// file in the same directory; on success the file is flushed, synced and renamed to `path`.
/// `fill` reports in the caller's error type, which holds this crate's [`WriteError`].
pub fn write_atomic<E, F>(path: &Path, fill: F) -> Result<(), E>
where
    E: From<WriteError>,
    F: FnOnce(&mut BufWriter<&mut File>) -> Result<(), E>,
{
    let failed = |e: &std::io::Error| E::from(WriteError::new(path, e));
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if path.is_dir() {
        return Err(E::from(WriteError {
            path: path.to_path_buf(),
            detail: "it is a directory".into(),
            kind: std::io::ErrorKind::IsADirectory,
        }));
    }
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
    tmp.persist(path).map_err(|e| failed(&e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
