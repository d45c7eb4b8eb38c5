//! End-to-end tests of `musicdiff vocoder train|export` and `--vocoder`: a tiny vocoder trained
//! for a few steps on synthetic tones resumes exactly, exports a directory that roundtrip,
//! generate and continue use (the input kept bit for bit), and every bad input is an exit-2
//! error naming the file.

mod common;

use std::path::{Path, PathBuf};

use common::{musicdiff, s, stderr, stdout, tiny_model};

/// An audio directory with `train/` (six tones) and `test/` (two), 1.5 s each at 22050 Hz.
fn tones(dir: &Path) -> PathBuf {
    let data = dir.join("tones");
    for (split, rates) in [
        ("train", &[0.03f32, 0.05, 0.07, 0.09, 0.11, 0.13][..]),
        ("test", &[0.04, 0.1][..]),
    ] {
        std::fs::create_dir_all(data.join(split)).unwrap();
        for (k, rate) in rates.iter().enumerate() {
            let samples: Vec<f32> = (0..33075)
                .map(|i| (i as f32 * rate).sin() * 0.4 + (i as f32 * rate * 2.7).sin() * 0.1)
                .collect();
            musicdiff_dsp::audio::write_wav(
                &data.join(split).join(format!("{k}.wav")),
                &samples,
                22050,
                musicdiff_dsp::audio::WavFormat::Pcm16,
            )
            .unwrap();
        }
    }
    data
}

fn config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/vocoder/tiny.toml")
}

fn train(data: &Path, run: &Path, extra: &[&str]) -> std::process::Output {
    let config = config();
    let mut args = vec![
        "-q",
        "vocoder",
        "train",
        "--data",
        s(data),
        "--config",
        s(&config),
        "--out",
        s(run),
    ];
    args.extend_from_slice(extra);
    musicdiff(&args)
}

/// The training-loss lines of a run's metrics.
fn losses(run: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Some((v["step"].as_u64()?, v["loss"].as_f64()?))
        })
        .collect()
}

#[test]
fn a_tiny_vocoder_trains_resumes_exactly_exports_and_converts() {
    let dir = tempfile::tempdir().unwrap();
    let data = tones(dir.path());

    // Uninterrupted: 8 steps.
    let whole = dir.path().join("whole");
    let o = train(&data, &whole, &["--max-steps", "8"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("stopped at step 8"), "{}", stdout(&o));
    assert!(whole.join("loss.png").exists());
    // Interrupted at 4, resumed to 8: the same losses, step for step.
    let split = dir.path().join("split");
    let o = train(&data, &split, &["--max-steps", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = train(&data, &split, &["--max-steps", "8", "--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (a, b) = (losses(&whole), losses(&split));
    assert_eq!(a.len(), 4, "{a:?}");
    assert_eq!(a, b);
    // A second start over a run with checkpoints is refused.
    let o = train(&data, &whole, &["--max-steps", "9"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--resume"), "{}", stderr(&o));

    // Export, then convert with it.
    let voc = dir.path().join("voc");
    let o = musicdiff(&["-q", "vocoder", "export", s(&whole), "--out", s(&voc)]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["vocoder.json", "vocoder.safetensors", "README.md"] {
        assert!(voc.join(f).exists(), "{f}");
    }
    let o = musicdiff(&["-q", "vocoder", "export", s(&whole), "--out", s(&voc)]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "exporting over a vocoder needs --force"
    );
    // Synthesis settings are chosen at export and recorded; bad values are refused.
    let reexport = |extra: &[&str]| {
        let mut args = vec![
            "-q",
            "vocoder",
            "export",
            s(&whole),
            "--out",
            s(&voc),
            "--force",
        ];
        args.extend_from_slice(extra);
        musicdiff(&args)
    };
    let o = reexport(&["--refine-iters", "65"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("refine_iters"), "{}", stderr(&o));
    let o = reexport(&["--phase", "magic"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("neither"), "{}", stderr(&o));
    let o = reexport(&["--refine-iters", "3", "--phase", "pghi", "--mel-fit", "5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let meta = musicdiff_vocoder::dir::read_meta(&voc).unwrap();
    assert_eq!(
        (meta.config.refine_iters, meta.config.mel_fit_iters),
        (3, 5)
    );
    assert_eq!(
        meta.config.synthesis_phase,
        musicdiff_vocoder::SynthesisPhase::Pghi
    );
    let card = std::fs::read_to_string(voc.join("README.md")).unwrap();
    assert!(
        card.contains("PGHI") && card.contains("3 fast Griffin-Lim") && card.contains("(5 "),
        "{card}"
    );
    // Back to the run's own synthesis for the conversions below.
    let o = reexport(&[
        "--phase",
        "network",
        "--refine-iters",
        "0",
        "--mel-fit",
        "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    let input = data.join("test/0.wav");
    let rt = dir.path().join("rt.wav");
    let o = musicdiff(&["roundtrip", s(&input), "-o", s(&rt), "--vocoder", s(&voc)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("vocoder vocos-small"), "{}", stdout(&o));
    let back = musicdiff_dsp::audio::decode_file(&rt).unwrap();
    assert_eq!(back.channels[0].len(), 33075);

    // Generate and continue with the tiny model through the vocoder.
    let model = tiny_model(dir.path());
    let generated = dir.path().join("gen.wav");
    let o = musicdiff(&[
        "-q",
        "generate",
        "a hum",
        "--seconds",
        "1",
        "--steps",
        "2",
        "--model",
        s(&model),
        "--vocoder",
        s(&voc),
        "-o",
        s(&generated),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(generated.with_extension("json")).unwrap())
            .unwrap();
    assert_eq!(side["conversion"], "vocoder vocos-small");
    assert_eq!(side["vocoder"]["steps"], 8);
    let cont = dir.path().join("cont.wav");
    let o = musicdiff(&[
        "-q",
        "continue",
        s(&input),
        "--seconds",
        "1",
        "--steps",
        "2",
        "--model",
        s(&model),
        "--vocoder",
        s(&voc),
        "-o",
        s(&cont),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pcm = |p: &Path| -> Vec<i16> {
        musicdiff_dsp::audio::decode_file(p).unwrap().channels[0]
            .iter()
            .map(|&v| musicdiff_dsp::audio::to_pcm16(v))
            .collect()
    };
    let (orig, out) = (pcm(&input), pcm(&cont));
    assert_eq!(out.len(), orig.len() + 22050);
    assert_eq!(out[..orig.len()], orig[..], "the input is kept bit for bit");
    // The seam has no step larger than the input's own largest sample-to-sample change.
    let largest = orig
        .windows(2)
        .map(|w| (w[1] as i32 - w[0] as i32).abs())
        .max()
        .unwrap();
    let seam = (out[orig.len()] as i32 - out[orig.len() - 1] as i32).abs();
    assert!(seam <= largest, "seam step {seam} vs the input's {largest}");

    // Griffin-Lim on request, by name.
    let gl = dir.path().join("gl.wav");
    let o = musicdiff(&[
        "-q",
        "generate",
        "a hum",
        "--seconds",
        "1",
        "--steps",
        "2",
        "--model",
        s(&model),
        "--vocoder",
        "griffin-lim",
        "--gl-iters",
        "2",
        "-o",
        s(&gl),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(gl.with_extension("json")).unwrap()).unwrap();
    assert_eq!(side["conversion"], "griffin-lim (2 iterations)");
}

#[test]
fn bad_vocoder_inputs_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = tones(dir.path());
    let input = data.join("train/0.wav");
    let out = dir.path().join("o.wav");

    // A vocoder directory that is not there.
    let missing = dir.path().join("no-vocoder");
    let o = musicdiff(&[
        "roundtrip",
        s(&input),
        "-o",
        s(&out),
        "--vocoder",
        s(&missing),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no-vocoder"), "{}", stderr(&o));
    assert!(!out.exists());

    // A vocoder whose spectrogram differs from the one asked for.
    let run = dir.path().join("run");
    let o = train(&data, &run, &["--max-steps", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let voc = dir.path().join("voc");
    let o = musicdiff(&["-q", "vocoder", "export", s(&run), "--out", s(&voc)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = musicdiff(&[
        "roundtrip",
        s(&input),
        "-o",
        s(&out),
        "--vocoder",
        s(&voc),
        "--n-mels",
        "64",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("reads 80 mels"), "{}", stderr(&o));
    assert!(!out.exists());

    // Damaged weights are named, with the hash that failed.
    let w = voc.join("vocoder.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x55;
    std::fs::write(&w, bytes).unwrap();
    let o = musicdiff(&["roundtrip", s(&input), "-o", s(&out), "--vocoder", s(&voc)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("vocoder.safetensors") && stderr(&o).contains("SHA-256"),
        "{}",
        stderr(&o)
    );

    // Training data without audio, and a config with a bad value, named.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = train(&empty, &dir.path().join("r2"), &["--max-steps", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no audio files"), "{}", stderr(&o));
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(config())
        .unwrap()
        .replace("segment_samples = 4096", "segment_samples = 4000");
    std::fs::write(&bad, text).unwrap();
    let o = musicdiff(&[
        "vocoder",
        "train",
        "--data",
        s(&data),
        "--config",
        s(&bad),
        "--out",
        s(&dir.path().join("r3")),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("bad.toml") && stderr(&o).contains("data.segment_samples"),
        "{}",
        stderr(&o)
    );
}

/// With no `--vocoder`, conversion uses the bundled vocoder (models/vocoder, found beside the
/// binary's ancestors, i.e. this checkout), and `MUSICDIFF_VOCODER=griffin-lim` turns it back to
/// Griffin-Lim without a note.
#[test]
fn default_conversion_is_the_bundled_vocoder() {
    let dir = tempfile::tempdir().unwrap();
    let data = tones(dir.path());
    let input = data.join("train/0.wav");
    let out = dir.path().join("o.wav");
    let bundled: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../models/vocoder/vocoder.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let id = bundled["id"].as_str().unwrap();
    let run = |env: Option<&str>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_musicdiff"));
        c.env_remove("MUSICDIFF_VOCODER");
        if let Some(v) = env {
            c.env("MUSICDIFF_VOCODER", v);
        }
        let o = c
            .args(["roundtrip", s(&input), "-o", s(&out)])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        (stdout(&o), stderr(&o))
    };
    let (text, _) = run(None);
    assert!(text.contains(&format!("vocoder {id}")), "{text}");
    let (text, err) = run(Some("griffin-lim"));
    assert!(
        text.contains("griffin-lim (32 it)") && !text.contains(id),
        "{text}"
    );
    assert!(!err.contains("no vocoder installed"), "{err}");
}

/// `vocoder pairs` writes the tiny model's clean estimates beside the audio they line up with
/// (whole frames, nothing partial left behind), refuses to write over a set, and a vocoder
/// fine-tunes on the pairs from an exported vocoder's weights (`--init-from`).
#[test]
fn predicted_mel_pairs_fine_tune_a_vocoder_from_its_weights() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let shards = dir.path().join("shards");
    let pairs = dir.path().join("pairs");
    let args = |out: &Path, train: &'static str| {
        vec![
            "-q".to_string(),
            "vocoder".into(),
            "pairs".into(),
            "--model".into(),
            s(&model).into(),
            "--data".into(),
            s(&shards).into(),
            "--out".into(),
            s(out).into(),
            "--train-windows".into(),
            train.into(),
            "--test-windows".into(),
            "1".into(),
            "--batch-size".into(),
            "2".into(),
        ]
    };
    let run = |a: Vec<String>| musicdiff(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let o = run(args(&pairs, "3"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("3 train + 1 test pairs"),
        "{}",
        stdout(&o)
    );
    assert!(!pairs.with_extension("partial").exists());
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pairs.join("pairs.json")).unwrap()).unwrap();
    assert_eq!(record["model"], "musicdiff-tiny-3");
    // The tiny shards have no test split: the test pair is the training window after the three.
    assert_eq!(record["test_from_train"], 1);
    for (split, n) in [("train", 3), ("test", 1)] {
        for k in 0..n {
            let wav = pairs.join(split).join(format!("{k:06}.wav"));
            let audio = musicdiff_dsp::audio::load_mono(&wav, 22050).unwrap();
            let (mel, frames, bands) = musicdiff_train::predicted::read_mel(&wav)
                .unwrap()
                .expect("a predicted mel beside the audio");
            assert_eq!(bands, 80);
            assert_eq!(mel.len(), frames * bands);
            assert!(mel.iter().all(|v| v.is_finite()));
            assert_eq!(audio.len(), frames * 256, "{}", wav.display());
        }
    }
    // More windows asked for than the shards hold: an error, and no output.
    let more = dir.path().join("more");
    let o = run(args(&more, "500"));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("500"), "{}", stderr(&o));
    assert!(!more.exists() && !more.with_extension("partial").exists());
    // Over an existing set: refused.
    let o = run(args(&pairs, "3"));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));

    // A tiny vocoder, then its fine-tune on the pairs.
    let tones = tones(dir.path());
    let base_run = dir.path().join("base-run");
    let o = train(&tones, &base_run, &["--max-steps", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let voc = dir.path().join("voc");
    let o = musicdiff(&["-q", "vocoder", "export", s(&base_run), "--out", s(&voc)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ft = dir.path().join("ft");
    let o = train(&pairs, &ft, &["--max-steps", "2", "--init-from", s(&voc)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("stopped at step 2"), "{}", stdout(&o));
    let state = std::fs::read_to_string(ft.join("checkpoints/step-00000002/state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["init_from"], s(&voc));
    // A directory that is not a vocoder: refused, named.
    let o = train(&pairs, &dir.path().join("ft2"), &["--init-from", s(&model)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains(s(&model)), "{}", stderr(&o));
}
