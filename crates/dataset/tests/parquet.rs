//! A Hugging Face-style parquet dataset written here (audio as `{bytes, path}` structs, a text
//! column, an extra column), read back and prepared into shards.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use burn::prelude::*;
use musicdiff_common::assets;
use musicdiff_dataset::prepare::{self, PrepareConfig};
use musicdiff_dsp::audio::{WavFormat, write_wav};
use musicdiff_text::TextEncoder;
use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

/// Writes rows of (wav bytes, original path, caption or None, genre).
fn write_parquet(path: &Path, rows: &[(Vec<u8>, &str, Option<&str>, &str)]) {
    let schema = Arc::new(
        parse_message_type(
            "message schema {
               optional group audio {
                 optional binary bytes;
                 optional binary path (UTF8);
               }
               optional binary text (UTF8);
               optional binary genre (UTF8);
             }",
        )
        .unwrap(),
    );
    let props = Arc::new(WriterProperties::builder().build());
    let mut writer = SerializedFileWriter::new(File::create(path).unwrap(), schema, props).unwrap();
    let mut group = writer.next_row_group().unwrap();
    // Leaf columns in schema order: audio.bytes, audio.path (definition level 2 when
    // present: group and leaf both defined), text and genre (level 1).
    let columns: Vec<(Vec<ByteArray>, Vec<i16>)> = vec![
        (
            rows.iter().map(|r| ByteArray::from(r.0.clone())).collect(),
            vec![2; rows.len()],
        ),
        (
            rows.iter().map(|r| ByteArray::from(r.1)).collect(),
            vec![2; rows.len()],
        ),
        (
            rows.iter()
                .filter_map(|r| r.2.map(ByteArray::from))
                .collect(),
            rows.iter()
                .map(|r| if r.2.is_some() { 1 } else { 0 })
                .collect(),
        ),
        (
            rows.iter().map(|r| ByteArray::from(r.3)).collect(),
            vec![1; rows.len()],
        ),
    ];
    for (values, defs) in columns {
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<ByteArrayType>()
            .write_batch(&values, Some(&defs), None)
            .unwrap();
        col.close().unwrap();
    }
    group.close().unwrap();
    writer.close().unwrap();
}

fn wav_bytes(dir: &Path, name: &str, seconds: f64, freq: f32) -> Vec<u8> {
    let samples: Vec<f32> = (0..(seconds * 22050.0) as usize)
        .map(|i| (std::f32::consts::TAU * freq * i as f32 / 22050.0).sin() * 0.3)
        .collect();
    let p = dir.join(name);
    write_wav(&p, &samples, 22050, WavFormat::Pcm16).unwrap();
    std::fs::read(p).unwrap()
}

#[test]
fn parquet_rows_become_records_and_shards() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let a = wav_bytes(dir.path(), "a.wav", 3.0, 300.0);
    let b = wav_bytes(dir.path(), "b.wav", 5.0, 500.0);
    write_parquet(
        &data.join("train-00000-of-00001.parquet"),
        &[
            (a, "clips/a.wav", Some("warm pad"), "ambient"),
            (b.clone(), "clips/b.wav", Some("bright lead"), "trance"),
            (b, "clips/c.wav", None, "none"),
        ],
    );

    let work = dir.path().join("work");
    let listing = musicdiff_dataset::parquet::read(&data, "audio", "text", &work).unwrap();
    assert_eq!(listing.records.len(), 2);
    assert_eq!(listing.records[0].caption, "warm pad");
    assert_eq!(listing.records[0].split.as_deref(), Some("train"));
    assert_eq!(listing.records[1].fields["genre"], "trance");
    assert_eq!(listing.records[1].fields["original_path"], "clips/b.wav");
    assert_eq!(listing.problems.len(), 1);
    assert!(listing.problems[0].reason.contains("missing caption"));
    let decoded = musicdiff_dsp::audio::decode_file(&listing.records[1].audio).unwrap();
    assert_eq!(decoded.len(), 5 * 22050);

    let encoder = TextEncoder::load(
        &assets::minilm().expect("run scripts/fetch-assets.sh"),
        &Device::flex(),
    )
    .unwrap();
    let out = dir.path().join("shards");
    let cfg = PrepareConfig {
        caption_column: "text".into(),
        window_seconds: 4.0,
        window_hop_seconds: 4.0,
        min_seconds: 2.0,
        ..Default::default()
    };
    let report = prepare::prepare(&data, &out, &cfg, &encoder, &|_, _| {}).unwrap();
    // a: 3 s -> one window; b: 5 s -> [0, 4) only (a 1 s tail is below min_seconds).
    assert_eq!(report.manifest.windows, 2);
    assert_eq!(report.manifest.skipped.len(), 1);
}
