//! Reader for the Hugging Face AudioFolder layout (`datasets` "audiofolder" builder): audio
//! files under a root, described by `metadata.jsonl` or `metadata.csv` files whose
//! `file_name` column is relative to the metadata file's own directory; the caption column's
//! name is chosen by the caller. Split directories (`train/`, `test/`, ...) and nested folders
//! are found by walking the tree.

use std::collections::HashMap;
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

/// The metadata files below `root`, and the links the walk did not follow.
fn metadata_files(root: &Path) -> Result<(Vec<PathBuf>, Vec<musicdiff_common::walk::SkippedLink>)> {
    let is_metadata = |p: &Path| {
        matches!(
            p.file_name().and_then(|n| n.to_str()),
            Some("metadata.jsonl" | "metadata.csv")
        )
    };
    // Audio is found through the metadata, not the walk: a second path to an audio file only
    // matters if a row names it, and then the row is reported.
    let walk = musicdiff_common::walk::matching(root, is_metadata)?;
    Ok((walk.files, walk.skipped))
}

/// A metadata row as a JSON object, or why it could not be read.
type Row = std::result::Result<Map<String, Value>, String>;

/// Rows of one metadata file, with the line (1-based) each came from. A row that cannot be
/// read (bad UTF-8, malformed JSON or CSV) is an `Err` row, not an error of the file.
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
        let mut rows = Vec::new();
        // Byte records, so that a row with bad UTF-8 is one bad row and the rest are read.
        for (i, r) in reader.byte_records().enumerate() {
            let fallback = i + 2;
            let (line, row) = match r {
                Ok(r) => {
                    let line = r.position().map_or(fallback, |p| p.line() as usize);
                    let row = headers
                        .iter()
                        .zip(r.iter())
                        .map(|(h, v)| match std::str::from_utf8(v) {
                            Ok(v) => Ok((h.to_string(), Value::String(v.to_string()))),
                            Err(e) => Err(format!("column '{h}' is not valid UTF-8 ({e})")),
                        })
                        .collect::<std::result::Result<Map<_, _>, _>>();
                    (line, row)
                }
                Err(e) => {
                    let line = e.position().map_or(fallback, |p| p.line() as usize);
                    (line, Err(e.to_string()))
                }
            };
            rows.push((line, row));
        }
        Ok(rows)
    } else {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        Ok(bytes
            .split(|&b| b == b'\n')
            .enumerate()
            .filter(|(_, l)| !l.trim_ascii().is_empty())
            .map(|(i, l)| {
                let row = match std::str::from_utf8(l) {
                    Err(e) => Err(format!("not valid UTF-8 ({e})")),
                    Ok(l) => match serde_json::from_str::<Value>(l) {
                        Ok(Value::Object(m)) => Ok(m),
                        Ok(_) => Err("not a JSON object".to_string()),
                        Err(e) => Err(e.to_string()),
                    },
                };
                (i + 1, row)
            })
            .collect())
    }
}

/// A usable row, before duplicates are dropped.
struct Described {
    record: Record,
    location: String,
    name: String,
}

/// Reads every metadata file under `root`. Rows without a usable caption or audio file are
/// reported as problems, not errors; so are unreadable rows, rows describing an audio file
/// already described (the first row is kept; across splits the `train` row is kept, so that no
/// clip is both trained on and held out) and links the walk did not follow. Only an
/// unreadable root or metadata file is an error.
pub fn read(root: &Path, caption_column: &str) -> Result<Listing> {
    if !root.is_dir() {
        return Err(DataError::io(
            root,
            std::io::Error::new(std::io::ErrorKind::NotFound, "not a dataset directory"),
        ));
    }
    let root = std::path::absolute(root).map_err(|e| DataError::io(root, e))?;
    let (files, skipped_links) = metadata_files(&root)?;
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
    for link in skipped_links {
        listing.report(&link.path.display().to_string(), link.reason);
    }
    let mut described = Vec::new();
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
            described.push(Described {
                record: Record {
                    audio,
                    caption,
                    fields: row,
                    split: split.clone(),
                },
                location,
                name,
            });
        }
    }
    drop_duplicates(&mut listing, described);
    Ok(listing)
}

/// Keeps one row per audio file (by identity on disk, so a link or a second spelling of the
/// name is the same file): the first, except that a `train` row wins over rows of other splits.
/// The others are reported.
fn drop_duplicates(listing: &mut Listing, described: Vec<Described>) {
    let mut order: Vec<usize> = (0..described.len()).collect();
    order.sort_by_key(|&i| (described[i].record.split.as_deref() != Some("train"), i));
    let mut first: HashMap<musicdiff_common::walk::FileId, usize> = HashMap::new();
    let mut keep = vec![true; described.len()];
    for i in order {
        let Some(id) = musicdiff_common::walk::file_id(&described[i].record.audio) else {
            continue;
        };
        let Some(&j) = first.get(&id) else {
            first.insert(id, i);
            continue;
        };
        keep[i] = false;
        let (d, kept) = (&described[i], &described[j]);
        let split = |s: &Option<String>| s.clone().unwrap_or_else(|| "(root)".into());
        let reason = if d.record.split == kept.record.split {
            format!(
                "{}: duplicate of {} (the same audio file); the first row is kept",
                d.name, kept.location
            )
        } else {
            format!(
                "{}: the same audio file as {} in split '{}'; skipped so that it does not \
                 leak into split '{}'",
                d.name,
                kept.location,
                split(&kept.record.split),
                split(&d.record.split)
            )
        };
        listing.report(&d.location, reason);
    }
    listing.records.extend(
        described
            .into_iter()
            .zip(keep)
            .filter(|(_, k)| *k)
            .map(|(d, _)| d.record),
    );
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

    fn clips(dir: &Path, names: &[&str]) {
        for n in names {
            let p = dir.join(n);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, n.as_bytes()).unwrap();
        }
    }

    fn reasons(l: &Listing) -> Vec<String> {
        l.problems
            .iter()
            .map(|p| format!("{}: {}", p.location, p.reason))
            .collect()
    }

    #[test]
    fn one_bad_utf8_byte_in_metadata_skips_only_that_row() {
        let dir = tempfile::tempdir().unwrap();
        let train = dir.path().join("train");
        clips(&train, &["a.wav", "b.wav", "c.wav"]);
        let mut jsonl = b"{\"file_name\": \"a.wav\", \"text\": \"one\"}\n".to_vec();
        jsonl.extend(b"{\"file_name\": \"b.wav\", \"text\": \"t\xffo\"}\n");
        jsonl.extend(b"{\"file_name\": \"c.wav\", \"text\": \"three\"}\n");
        std::fs::write(train.join("metadata.jsonl"), jsonl).unwrap();
        let test = dir.path().join("test");
        clips(&test, &["d.wav", "e.wav", "f.wav"]);
        let mut csv = b"file_name,text\nd.wav,four\ne.wav,fi\xffve\n".to_vec();
        csv.extend(b"f.wav,six,extra column\nd.wav\n");
        std::fs::write(test.join("metadata.csv"), csv).unwrap();
        let l = read(dir.path(), "text").unwrap();
        let captions: Vec<&str> = l.records.iter().map(|r| r.caption.as_str()).collect();
        assert_eq!(captions, ["four", "one", "three"]);
        let r = reasons(&l);
        assert_eq!(r.len(), 4, "{r:?}");
        assert!(r[0].contains("metadata.csv:3: unreadable row") && r[0].contains("UTF-8"));
        assert!(r[1].contains("metadata.csv:4: unreadable row"), "{r:?}");
        assert!(r[2].contains("metadata.csv:5: unreadable row"), "{r:?}");
        assert!(r[3].contains("metadata.jsonl:2: unreadable row") && r[3].contains("UTF-8"));
    }

    #[test]
    fn duplicate_metadata_rows_keep_the_first_and_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let train = dir.path().join("train");
        clips(&train, &["a.wav", "b.wav"]);
        std::fs::write(
            train.join("metadata.jsonl"),
            "{\"file_name\": \"a.wav\", \"text\": \"first\"}\n\
             {\"file_name\": \"b.wav\", \"text\": \"bee\"}\n\
             {\"file_name\": \"a.wav\", \"text\": \"second\"}\n",
        )
        .unwrap();
        std::fs::write(
            train.join("metadata.csv"),
            "file_name,text\n./b.wav,again\n",
        )
        .unwrap();
        let l = read(dir.path(), "text").unwrap();
        let captions: Vec<&str> = l.records.iter().map(|r| r.caption.as_str()).collect();
        // metadata.csv sorts first, so its b.wav row is the first one.
        assert_eq!(captions, ["again", "first"]);
        let r = reasons(&l);
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(
            r.iter()
                .any(|r| r.contains("metadata.jsonl:3: a.wav: duplicate of")
                    && r.contains("metadata.jsonl:1")),
            "{r:?}"
        );
        assert!(
            r.iter()
                .any(|r| r.contains("metadata.jsonl:2: b.wav: duplicate of")
                    && r.contains("metadata.csv:2")),
            "{r:?}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loop_in_a_dataset_is_reported_and_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let train = dir.path().join("train");
        clips(&train, &["a.wav", "b.wav"]);
        std::fs::write(
            train.join("metadata.jsonl"),
            "{\"file_name\": \"a.wav\", \"text\": \"a\"}\n{\"file_name\": \"b.wav\", \"text\": \"b\"}\n",
        )
        .unwrap();
        std::os::unix::fs::symlink(".", train.join("loop")).unwrap();
        std::os::unix::fs::symlink("..", train.join("up")).unwrap();
        let l = read(dir.path(), "text").unwrap();
        assert_eq!(l.records.len(), 2);
        assert_eq!(l.metadata_files.len(), 1);
        let r = reasons(&l);
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(
            r[0].contains("train/loop") && r[0].contains("not followed"),
            "{r:?}"
        );
        assert!(
            r[1].contains("train/up") && r[1].contains("not followed"),
            "{r:?}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlink_from_test_into_train_does_not_leak_clips_into_test() {
        let dir = tempfile::tempdir().unwrap();
        let train = dir.path().join("train");
        let test = dir.path().join("test");
        clips(&train, &["a.wav", "b.wav"]);
        clips(&test, &["d.wav"]);
        std::fs::write(
            train.join("metadata.jsonl"),
            "{\"file_name\": \"a.wav\", \"text\": \"a\"}\n{\"file_name\": \"b.wav\", \"text\": \"b\"}\n",
        )
        .unwrap();
        std::os::unix::fs::symlink("../train", test.join("up")).unwrap();
        std::os::unix::fs::symlink("../train/b.wav", test.join("bee.wav")).unwrap();
        std::fs::write(
            test.join("metadata.jsonl"),
            "{\"file_name\": \"d.wav\", \"text\": \"d\"}\n\
             {\"file_name\": \"up/a.wav\", \"text\": \"a again\"}\n\
             {\"file_name\": \"bee.wav\", \"text\": \"b again\"}\n",
        )
        .unwrap();
        let l = read(dir.path(), "text").unwrap();
        let got: Vec<(String, &str)> = l
            .records
            .iter()
            .map(|r| (r.caption.clone(), r.split.as_deref().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("d".to_string(), "test"),
                ("a".to_string(), "train"),
                ("b".to_string(), "train")
            ]
        );
        let r = reasons(&l);
        assert_eq!(r.len(), 3, "{r:?}");
        assert!(
            r[0].contains("test/up") && r[0].contains("already walked"),
            "{r:?}"
        );
        assert!(r[1].contains("test/metadata.jsonl:2: up/a.wav: the same audio file as"));
        assert!(r[1].contains("leak into split 'test'"), "{r:?}");
        assert!(r[2].contains("test/metadata.jsonl:3: bee.wav"), "{r:?}");
    }
}
