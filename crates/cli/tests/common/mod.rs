//! Helpers shared by the end-to-end tests: run the built binary, read its output, find fixtures.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

pub fn musicdiff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_musicdiff"))
        .args(args)
        .output()
        .expect("the binary runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A one-file audiofolder (6 s of a steady tone, captioned) prepared into shards under `dir`.
pub fn tiny_shards(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let samples: Vec<f32> = (0..22050 * 6)
        .map(|i| (i as f32 * 0.05).sin() * 0.3)
        .collect();
    musicdiff_dsp::audio::write_wav(
        &data.join("a.wav"),
        &samples,
        22050,
        musicdiff_dsp::audio::WavFormat::Pcm16,
    )
    .unwrap();
    std::fs::write(
        data.join("metadata.csv"),
        "file_name,text\na.wav,a steady hum\n",
    )
    .unwrap();
    let shards = dir.join("shards");
    let o = musicdiff(&[
        "-q",
        "data",
        "prepare",
        "--data",
        s(&data),
        "--out",
        s(&shards),
        "--caption-column",
        "text",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // 6 s of audio: one 10 s window, padded (5 s is the least a window keeps).
    assert!(stdout(&o).contains("1 windows"), "{}", stdout(&o));
    shards
}

/// The repository's tiny training config.
pub fn tiny_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/train/tiny.toml")
}
