//! Helpers shared by the end-to-end tests: run the built binary, read its output, find fixtures.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// The binary run with `args`, converting with Griffin-Lim unless `--vocoder` says otherwise:
/// the tests' tiny models are not what the bundled vocoder reads, and Griffin-Lim's output is
/// what their assertions describe. (`default_conversion_is_the_bundled_vocoder` in vocoder.rs
/// runs without it.)
pub fn musicdiff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_musicdiff"))
        .env("MUSICDIFF_VOCODER", "griffin-lim")
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

/// An audiofolder of four clips (6 s of steady tones, captioned; `a.wav` is the one tests use
/// as input) prepared into shards under `dir`: one window each, as many as the tiny config's
/// batch (a smaller dataset is refused by `train`).
pub fn tiny_shards(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut metadata = String::from("file_name,text\n");
    for (name, rate, caption) in [
        ("a", 0.05f32, "a steady hum"),
        ("b", 0.08, "a higher hum"),
        ("c", 0.03, "a low drone"),
        ("d", 0.12, "a bright tone"),
    ] {
        let samples: Vec<f32> = (0..22050 * 6)
            .map(|i| (i as f32 * rate).sin() * 0.3)
            .collect();
        musicdiff_dsp::audio::write_wav(
            &data.join(format!("{name}.wav")),
            &samples,
            22050,
            musicdiff_dsp::audio::WavFormat::Pcm16,
        )
        .unwrap();
        metadata.push_str(&format!("{name}.wav,{caption}\n"));
    }
    std::fs::write(data.join("metadata.csv"), metadata).unwrap();
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
    // 6 s of audio each: one 10 s window, padded (5 s is the least a window keeps).
    assert!(stdout(&o).contains("4 windows"), "{}", stdout(&o));
    shards
}

/// The repository's tiny training config.
pub fn tiny_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/train/tiny.toml")
}

/// Trains the tiny config for 3 steps and exports it.
pub fn tiny_model(dir: &Path) -> PathBuf {
    let shards = tiny_shards(dir);
    let run = dir.join("run");
    let o = musicdiff(&[
        "-q",
        "train",
        "--data",
        s(&shards),
        "--config",
        s(&tiny_config()),
        "--out",
        s(&run),
        "--max-steps",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = dir.join("model");
    let o = musicdiff(&["-q", "export", s(&run), "-o", s(&model)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("musicdiff-tiny-3"), "{}", stdout(&o));
    for f in ["model.json", "model.safetensors", "README.md"] {
        assert!(model.join(f).exists(), "{f}");
    }
    model
}

/// A reference set for `eval`: four clips of 4 s, a plucked chord on every beat at the
/// caption's tempo, in its key, and `training_clip` (a clip the model was trained on) as
/// `leak.wav`.
pub fn reference_set(dir: &Path, training_clip: &Path) -> PathBuf {
    let refdir = dir.join("reference").join("test");
    std::fs::create_dir_all(&refdir).unwrap();
    let sr = 22050usize;
    let mut meta = String::new();
    for (name, bpm, root, third, caption) in [
        ("p1", 120.0f64, 60, 64, "solo piano, C major, 120 bpm"),
        ("p2", 90.0, 57, 60, "slow guitar in A minor, 90 bpm"),
        ("p3", 140.0, 62, 66, "fast piano, D major, 140 bpm"),
        ("p4", 100.0, 64, 67, "guitar with drums, E minor, 100 bpm"),
    ] {
        let beat = (60.0 / bpm * sr as f64) as usize;
        let mut x = vec![0.0f32; 4 * sr];
        for (i, v) in x.iter_mut().enumerate() {
            let t = (i % beat) as f32 / sr as f32;
            let env = (-t * 6.0).exp();
            for (k, note) in [root, third, root + 7].into_iter().enumerate() {
                let f = 440.0 * 2f32.powf((note as f32 - 69.0) / 12.0) * (1 + k % 2) as f32;
                *v += 0.15 * env * (std::f32::consts::TAU * f * i as f32 / sr as f32).sin();
            }
        }
        musicdiff_dsp::audio::write_wav(
            &refdir.join(format!("{name}.wav")),
            &x,
            sr as u32,
            musicdiff_dsp::audio::WavFormat::Pcm16,
        )
        .unwrap();
        meta.push_str(&format!(
            "{{\"file_name\": \"{name}.wav\", \"caption\": \"{caption}\", \"bpm\": {bpm}, \"time_signature\": \"4/4\"}}\n"
        ));
    }
    // A clip the model was trained on, under another name.
    std::fs::copy(training_clip, refdir.join("leak.wav")).unwrap();
    meta.push_str("{\"file_name\": \"leak.wav\", \"caption\": \"a steady hum, 100 bpm\"}\n");
    std::fs::write(refdir.join("metadata.jsonl"), meta).unwrap();
    refdir
}
