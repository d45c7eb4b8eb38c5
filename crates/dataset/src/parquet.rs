//! Reader for Hugging Face parquet datasets, as `datasets` writes them (`push_to_hub`,
//! `to_parquet`): an audio column that is a struct `{bytes: binary, path: string}` and a text
//! column. The audio bytes are written out once into a work directory (so memory does not grow
//! with the dataset, and a resumed run reuses them), and the rows become the same [`Record`]s
//! the AudioFolder reader gives. Splits come from the file names (`train-00000-of-00002`).

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::{Map, Value};

use crate::audiofolder::{Listing, Record};
use crate::error::{DataError, Result};

/// Is `path` a parquet file, or a directory holding some?
pub fn is_parquet_dataset(path: &Path) -> bool {
    if path.is_file() {
        return path.extension().is_some_and(|e| e == "parquet");
    }
    parquet_files(path).is_ok_and(|(f, _)| !f.is_empty())
}

/// The parquet files at `path`, and the links the walk did not follow.
fn parquet_files(path: &Path) -> Result<(Vec<PathBuf>, Vec<musicdiff_common::walk::SkippedLink>)> {
    if path.is_file() {
        return Ok((vec![path.to_path_buf()], Vec::new()));
    }
    let is_parquet = |p: &Path| p.extension().is_some_and(|e| e == "parquet");
    let walk = musicdiff_common::walk::matching(path, is_parquet)?;
    Ok((walk.files, walk.skipped))
}

/// The split a file holds, from `train-...`, `test-...`, `validation-...` names or folders.
fn split_of(file: &Path) -> Option<String> {
    let stem = file.file_stem()?.to_string_lossy().to_lowercase();
    let parent = file
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().to_lowercase());
    ["train", "test", "validation", "valid", "dev"]
        .iter()
        .find(|s| stem.starts_with(*s) || parent.as_deref() == Some(**s))
        .map(|s| s.to_string())
}

/// File extension for audio bytes, from the stored path or the bytes' signature.
fn extension(path: Option<&str>, bytes: &[u8]) -> &'static str {
    let from_path = path
        .and_then(|p| Path::new(p).extension())
        .map(|e| e.to_string_lossy().to_lowercase());
    match from_path.as_deref() {
        Some("wav") => "wav",
        Some("flac") => "flac",
        Some("mp3") => "mp3",
        Some("ogg") => "ogg",
        _ => match bytes.get(..4) {
            Some(b"RIFF") => "wav",
            Some(b"fLaC") => "flac",
            Some(b"OggS") => "ogg",
            _ => "mp3",
        },
    }
}

fn scalar(field: &Field) -> Option<Value> {
    Some(match field {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Byte(v) => Value::from(*v),
        Field::Short(v) => Value::from(*v),
        Field::Int(v) => Value::from(*v),
        Field::Long(v) => Value::from(*v),
        Field::UByte(v) => Value::from(*v),
        Field::UShort(v) => Value::from(*v),
        Field::UInt(v) => Value::from(*v),
        Field::ULong(v) => Value::from(*v),
        Field::Float(v) => Value::from(*v as f64),
        Field::Double(v) => Value::from(*v),
        Field::Str(s) => Value::String(s.clone()),
        _ => return None,
    })
}

/// Reads every row of the parquet file(s) at `data`; audio goes to `work_dir`.
pub fn read(
    data: &Path,
    audio_column: &str,
    caption_column: &str,
    work_dir: &Path,
) -> Result<Listing> {
    let (files, skipped_links) = parquet_files(data)?;
    std::fs::create_dir_all(work_dir).map_err(|e| DataError::io(work_dir, e))?;
    let mut listing = Listing {
        metadata_files: files.clone(),
        ..Default::default()
    };
    for link in skipped_links {
        listing.report(&link.path.display().to_string(), link.reason);
    }
    for file in files {
        let bad = |detail: String| DataError::Json {
            path: file.clone(),
            detail,
        };
        let reader =
            SerializedFileReader::new(File::open(&file).map_err(|e| DataError::io(&file, e))?)
                .map_err(|e| bad(e.to_string()))?;
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let split = split_of(&file);
        let rows = reader.get_row_iter(None).map_err(|e| bad(e.to_string()))?;
        for (i, row) in rows.enumerate() {
            let location = format!("{} row {i}", file.display());
            let row = match row {
                Ok(r) => r,
                Err(e) => {
                    listing.report(&location, format!("unreadable row: {e}"));
                    continue;
                }
            };
            let mut caption = None;
            let mut audio: Option<(Vec<u8>, Option<String>)> = None;
            let mut fields = Map::new();
            for (name, field) in row.get_column_iter() {
                if name == caption_column {
                    if let Field::Str(s) = field {
                        caption = Some(s.trim().to_string()).filter(|s| !s.is_empty());
                    }
                } else if name == audio_column {
                    if let Field::Group(g) = field {
                        let mut bytes = None;
                        let mut path = None;
                        for (k, v) in g.get_column_iter() {
                            match (k.as_str(), v) {
                                ("bytes", Field::Bytes(b)) => bytes = Some(b.data().to_vec()),
                                ("path", Field::Str(p)) => path = Some(p.clone()),
                                _ => {}
                            }
                        }
                        audio = bytes.map(|b| (b, path));
                    }
                } else if let Some(v) = scalar(field) {
                    fields.insert(name.clone(), v);
                }
            }
            let Some(caption) = caption else {
                listing.report(&location, format!("missing caption ('{caption_column}')"));
                continue;
            };
            let Some((bytes, path)) = audio.filter(|(b, _)| !b.is_empty()) else {
                listing.report(
                    &location,
                    format!("no audio bytes in column '{audio_column}'"),
                );
                continue;
            };
            let out = work_dir.join(format!(
                "{stem}-{i:06}.{}",
                extension(path.as_deref(), &bytes)
            ));
            // Rewritten only if the bytes differ: a resumed run keeps the file (and its
            // modification time, part of the shards' source fingerprint), and a changed
            // dataset never leaves stale audio behind.
            if std::fs::read(&out).ok().as_deref() != Some(&bytes[..]) {
                musicdiff_common::atomic::write_bytes(&out, &bytes)
                    .map_err(musicdiff_dsp::DspError::from)?;
            }
            if let Some(p) = path {
                fields.insert("original_path".into(), Value::String(p));
            }
            listing.records.push(Record {
                audio: out,
                caption,
                fields,
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
    fn splits_and_extensions() {
        assert_eq!(
            split_of(Path::new("data/train-00000-of-00002.parquet")).as_deref(),
            Some("train")
        );
        assert_eq!(
            split_of(Path::new("test/part.parquet")).as_deref(),
            Some("test")
        );
        assert_eq!(split_of(Path::new("x.parquet")), None);
        assert_eq!(extension(Some("a.FLAC"), b""), "flac");
        assert_eq!(extension(None, b"RIFF...."), "wav");
        assert_eq!(extension(Some("noext"), b"OggS"), "ogg");
    }
}
