//! Recursive directory listing shared by the dataset readers and the corpus builder.

use std::path::{Path, PathBuf};

use crate::error::PathError;

/// Every file below `root` (not following into files' contents), sorted by path.
pub fn files(root: &Path) -> Result<Vec<PathBuf>, PathError> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| PathError::new(&dir, e))? {
            let path = entry.map_err(|e| PathError::new(&dir, e))?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}
