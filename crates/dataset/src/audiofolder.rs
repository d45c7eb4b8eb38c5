//! Reader for the Hugging Face AudioFolder layout (`datasets` "audiofolder" builder): audio
//! files under a root, described by `metadata.jsonl` or `metadata.csv` files whose
//! `file_name` column is relative to the metadata file's own directory; the caption column's
//! name is chosen by the caller. Split directories (`train/`, `test/`, ...) and nested folders
//! are found by walking the tree.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{DataError, Result};

/// One described audio file.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Absolute path of the audio.
    pub audio: PathBuf,
    /// The caption; never empty.
    pub caption: String,
    /// Every other column of the row (genre, artist, instruments, ...).
    pub fields: Map<String, Value>,
    /// The first directory below the root (`train`, `test`), if the metadata sits in one.
    pub split: Option<String>,
}

/// A row that could not be used, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub location: String,
    pub reason: String,
}

/// Everything read from one dataset root.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub records: Vec<Record>,
    pub problems: Vec<Problem>,
    /// The metadata files read.
    pub metadata_files: Vec<PathBuf>,
}

impl Listing {
    /// Records an unusable row at `location` (file and line or row) with its reason.
    pub fn report(&mut self, location: &str, reason: impl Into<String>) {
        self.problems.push(Problem {
            location: location.to_string(),
            reason: reason.into(),
        });
    }
}

fn metadata_files(root: &Path) -> Result<Vec<PathBuf>> {
    Ok(musicdiff_common::walk::files(root)?
        .into_iter()
        .filter(|p| {
            matches!(
                p.file_name().and_then(|n| n.to_str()),
                Some("metadata.jsonl" | "metadata.csv")
            )
        })
        .collect())
}

/// A metadata row as a JSON object, or why it could not be read.
type Row = std::result::Result<Map<String, Value>, String>;

/// Rows of one metadata file, with the line (1-based) each came from.
fn rows(path: &Path) -> Result<Vec<(usize, Row)>> {
    if path.extension().is_some_and(|e| e == "csv") {
        let mut reader = csv::Reader::from_path(path).map_err(|e| DataError::Json {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let headers = reader
            .headers()
            .map_err(|e| DataError::Json {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?
            .clone();
        Ok(reader
            .records()
            .enumerate()
            .map(|(i, r)| {
                let row = r.map_err(|e| e.to_string()).map(|r| {
                    headers
                        .iter()
                        .zip(r.iter())
                        .map(|(h, v)| (h.to_string(), Value::String(v.to_string())))
                        .collect()
                });
                (i + 2, row)
            })
            .collect())
    } else {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        Ok(text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                let row = match serde_json::from_str::<Value>(l) {
                    Ok(Value::Object(m)) => Ok(m),
                    Ok(_) => Err("not a JSON object".to_string()),
                    Err(e) => Err(e.to_string()),
                };
                (i + 1, row)
            })
            .collect())
    }
}

/// Reads every metadata file under `root`. Rows without a usable caption or audio file are
/// reported as problems, not errors; only an unreadable root or metadata file is an error.
pub fn read(root: &Path, caption_column: &str) -> Result<Listing> {
    if !root.is_dir() {
        return Err(DataError::io(
            root,
            std::io::Error::new(std::io::ErrorKind::NotFound, "not a dataset directory"),
        ));
    }
    let root = std::path::absolute(root).map_err(|e| DataError::io(root, e))?;
    let files = metadata_files(&root)?;
    if files.is_empty() {
        return Err(DataError::Json {
            path: root.clone(),
            detail: "no metadata.jsonl or metadata.csv found (AudioFolder layout expected)".into(),
        });
    }
    let mut listing = Listing {
        metadata_files: files.clone(),
        ..Default::default()
    };
    for file in files {
        let dir = file.parent().unwrap_or(&root).to_path_buf();
        let split = dir
            .strip_prefix(&root)
            .ok()
            .and_then(|rel| rel.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        for (line, row) in rows(&file)? {
            let location = format!("{}:{line}", file.display());
            let mut row = match row {
                Ok(r) => r,
                Err(e) => {
                    listing.report(&location, format!("unreadable row: {e}"));
                    continue;
                }
            };
            let Some(Value::String(name)) = row.remove("file_name") else {
                listing.report(&location, "no file_name");
                continue;
            };
            let caption = match row.remove(caption_column) {
                Some(Value::String(c)) if !c.trim().is_empty() => c.trim().to_string(),
                _ => {
                    listing.report(
                        &location,
                        format!("{name}: missing caption ('{caption_column}')"),
                    );
                    continue;
                }
            };
            let audio = dir.join(&name);
            if !audio.is_file() {
                listing.report(&location, format!("{name}: audio file not found"));
                continue;
            }
            listing.records.push(Record {
                audio,
                caption,
                fields: row,
                split: split.clone(),
            });
        }
    }
    Ok(listing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_jsonl_and_csv_and_reports_bad_rows() {
        let dir = tempfile::tempdir().unwrap();
        let train = dir.path().join("train/sub");
        std::fs::create_dir_all(&train).unwrap();
        std::fs::write(train.join("a.wav"), b"x").unwrap();
        std::fs::write(train.join("b.wav"), b"x").unwrap();
        std::fs::write(
            dir.path().join("train/metadata.jsonl"),
            "{\"file_name\": \"sub/a.wav\", \"text\": \"calm piano\", \"genre\": \"ambient\"}\n\
             {\"file_name\": \"sub/b.wav\"}\n\
             not json\n\
             {\"file_name\": \"sub/missing.wav\", \"text\": \"x\"}\n",
        )
        .unwrap();
        let test = dir.path().join("test");
        std::fs::create_dir_all(&test).unwrap();
        std::fs::write(test.join("c.wav"), b"x").unwrap();
        std::fs::write(
            test.join("metadata.csv"),
            "file_name,text,artist\nc.wav,\"fast reel, fiddle\",trad\n",
        )
        .unwrap();
        let l = read(dir.path(), "text").unwrap();
        assert_eq!(l.records.len(), 2);
        assert_eq!(l.records[0].caption, "fast reel, fiddle");
        assert_eq!(l.records[0].split.as_deref(), Some("test"));
        assert_eq!(l.records[0].fields["artist"], "trad");
        assert_eq!(l.records[1].split.as_deref(), Some("train"));
        assert_eq!(l.records[1].fields["genre"], "ambient");
        let reasons: Vec<&str> = l.problems.iter().map(|p| p.reason.as_str()).collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[0].contains("missing caption"));
        assert!(reasons[1].contains("unreadable row"));
        assert!(reasons[2].contains("not found"));
        assert!(l.problems[0].location.ends_with("metadata.jsonl:2"));
    }

    #[test]
    fn a_directory_without_metadata_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = read(dir.path(), "text").unwrap_err().to_string();
        assert!(err.contains("metadata.jsonl"), "{err}");
    }
}
