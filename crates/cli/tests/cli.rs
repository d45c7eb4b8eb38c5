//! End-to-end tests of the `musicdiff` binary: outputs on good input, and on bad input one
//! clear error line naming the file and the problem, exit code 2 and no output left behind.

mod common;

use std::path::Path;
use std::process::Command;

use common::{fixture, musicdiff, s, stderr, stdout, tiny_config, tiny_shards};

#[test]
fn spec_writes_png_and_npy_matching_librosa() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("clip.png");
    let npy = dir.path().join("clip.npy");
    let o = musicdiff(&[
        "--quiet",
        "spec",
        s(&fixture("audio/clip_22k.wav")),
        "-o",
        s(&png),
        "--npy",
        s(&npy),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).is_empty(),
        "--quiet must silence stderr: {}",
        stderr(&o)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");

    let ours = musicdiff_dsp::npy::read(&npy).unwrap();
    let gold = musicdiff_dsp::npy::read(&fixture("golden/logmel.npy")).unwrap();
    assert_eq!(ours.shape, gold.shape);
    let worst = ours
        .data
        .iter()
        .zip(&gold.data)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0.0, f64::max);
    assert!(worst < 1e-4, "log-mel differs from librosa by {worst}");
}

#[test]
fn spec_accepts_every_supported_format_and_parameters() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "clip_22k.flac",
        "clip_22k.mp3",
        "clip_22k.ogg",
        "clip_22k_f32.wav",
        "stereo_44k.wav",
    ] {
        let png = dir.path().join(format!("{name}.png"));
        let npy = dir.path().join(format!("{name}.npy"));
        let o = musicdiff(&[
            "spec",
            s(&fixture(&format!("audio/{name}"))),
            "-o",
            s(&png),
            "--npy",
            s(&npy),
            "--sr",
            "16000",
            "--n-fft",
            "512",
            "--hop",
            "128",
            "--n-mels",
            "64",
            "--fmin",
            "40",
            "--fmax",
            "7600",
            "--mel-scale",
            "htk",
            "--colormap",
            "viridis",
        ]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let arr = musicdiff_dsp::npy::read(&npy).unwrap();
        assert_eq!(arr.shape[0], 64, "{name}");
        assert!(png.exists());
    }
}

#[test]
fn roundtrip_reconstructs_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("rt.wav");
    let png = dir.path().join("rt.png");
    let o = musicdiff(&[
        "roundtrip",
        s(&fixture("audio/stereo_44k.wav")),
        "-o",
        s(&wav),
        "--png",
        s(&png),
        "--iters",
        "16",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for key in [
        "spectral convergence",
        "log-spectral distance",
        "griffin-lim (16 it)",
        "real-time factor",
    ] {
        assert!(out.contains(key), "missing '{key}' in:\n{out}");
    }
    let sc: f64 = out
        .lines()
        .find(|l| l.starts_with("spectral convergence"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .parse()
        .unwrap();
    assert!(sc < 0.4, "spectral convergence {sc}");
    let a = musicdiff_dsp::audio::decode_file(&wav).unwrap();
    assert_eq!((a.sample_rate, a.len()), (22050, 22050));
    assert!(png.exists());
}

/// `--pghi` starts Griffin-Lim from integrated phases: at 2 iterations it is closer than random
/// phases at 2; it cannot be combined with `--zero-phase`.
#[test]
fn roundtrip_with_pghi_phases() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("rt.wav");
    let input = fixture("audio/stereo_44k.wav");
    let sc = |extra: &[&str]| -> f64 {
        let mut args = vec!["roundtrip", s(&input), "-o", s(&wav), "--iters", "2"];
        args.extend_from_slice(extra);
        let o = musicdiff(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
            .lines()
            .find(|l| l.starts_with("spectral convergence"))
            .and_then(|l| l.split_whitespace().last())
            .unwrap()
            .parse()
            .unwrap()
    };
    let (pghi, random) = (sc(&["--pghi"]), sc(&[]));
    assert!(pghi < random, "pghi {pghi} random {random}");
    let o = musicdiff(&[
        "roundtrip",
        s(&input),
        "-o",
        s(&wav),
        "--pghi",
        "--zero-phase",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// Regression: `roundtrip` renamed its WAV into place before writing the picture and, when the
/// picture failed, deleted the WAV it had written, so `-o` naming the input destroyed it.
#[test]
fn a_failed_roundtrip_picture_leaves_the_input_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    std::fs::copy(fixture("audio/clip_22k.wav"), &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    // A directory where the picture should go fails the write even as root.
    let png = dir.path().join("in.png");
    std::fs::create_dir(&png).unwrap();
    let o = musicdiff(&[
        "-q",
        "roundtrip",
        s(&input),
        "-o",
        s(&input),
        "--png",
        s(&png),
        "--iters",
        "2",
    ]);
    // A directory in the way of an output is the user's to fix: exit 2, as every such case.
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("in.png"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&input).unwrap(), before, "the input changed");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

/// Regression: `spec` wrote the matrix first and, when the picture failed, deleted it, so an
/// existing file named by `--npy` was lost.
#[test]
fn a_failed_spec_picture_leaves_an_existing_npy_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("x.npy");
    std::fs::write(&npy, b"keep me").unwrap();
    let png = dir.path().join("x.png");
    std::fs::create_dir(&png).unwrap();
    let o = musicdiff(&[
        "-q",
        "spec",
        s(&fixture("audio/clip_22k.wav")),
        "-o",
        s(&png),
        "--npy",
        s(&npy),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(std::fs::read(&npy).unwrap(), b"keep me");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

/// Runs a failing command and checks the contract: exit 2, one line on stderr containing
/// every `needle`, and nothing left in the output directory.
fn assert_bad_input(args: &[&str], out_dir: &Path, needles: &[&str]) {
    let o = musicdiff(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "args {args:?}: stderr {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    assert!(err.starts_with("error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected '{n}' in: {err}");
    }

    let left: Vec<_> = std::fs::read_dir(out_dir).unwrap().collect();
    assert!(left.is_empty(), "output left behind: {left:?}");
}

#[test]
fn bad_inputs_fail_cleanly() {
    let inputs = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let png = out.path().join("x.png");
    let wav = out.path().join("x.wav");

    let missing = inputs.path().join("missing.wav");
    let empty = inputs.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    let text = inputs.path().join("readme.wav");
    std::fs::write(&text, "not audio at all\n".repeat(50)).unwrap();
    let truncated = inputs.path().join("truncated.wav");
    let bytes = std::fs::read(fixture("audio/clip_22k.wav")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let corrupt = inputs.path().join("corrupt.flac");
    let mut bytes = std::fs::read(fixture("audio/clip_22k.flac")).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 3000].fill(0x3C);
    std::fs::write(&corrupt, &bytes).unwrap();
    let opus = fixture("audio/clip_22k.opus");

    let cases: [(&Path, &[&str]); 6] = [
        (&missing, &["missing.wav", "No such file"]),
        (&empty, &["empty.wav", "file is empty"]),
        (&text, &["readme.wav", "not a recognised audio file"]),
        (&truncated, &["truncated.wav", "truncated"]),
        (&corrupt, &["corrupt.flac", "corrupt"]),
        (&opus, &["clip_22k.opus", "unsupported codec Opus"]),
    ];
    for (input, needles) in cases {
        assert_bad_input(
            &[
                "spec",
                s(input),
                "-o",
                s(&png),
                "--npy",
                s(&out.path().join("x.npy")),
            ],
            out.path(),
            needles,
        );
        assert_bad_input(
            &["-q", "roundtrip", s(input), "-o", s(&wav)],
            out.path(),
            needles,
        );
    }
}

/// Regression: I/O errors once printed their reason twice through the error chain.
#[test]
fn a_missing_input_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone.wav");
    let o = musicdiff(&["spec", s(&missing), "-o", s(&dir.path().join("x.png"))]);
    assert_eq!(
        stderr(&o).trim_end(),
        format!(
            "error: {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
}

#[test]
fn absurd_parameters_fail_cleanly() {
    let out = tempfile::tempdir().unwrap();
    let png = out.path().join("x.png");
    let clip = fixture("audio/clip_22k.wav");
    let cases: [(&[&str], &[&str]); 7] = [
        (&["--hop", "0"], &["--hop", "at least 1"]),
        (&["--n-mels", "600"], &["--n-mels", "600", "513"]),
        (&["--n-fft", "256", "--n-mels", "200"], &["--n-mels", "129"]),
        (&["--fmax", "30000"], &["--fmax", "Nyquist"]),
        (&["--win-length", "4096"], &["--win-length"]),
        (&["--power", "3"], &["--power"]),
        (&["--sr", "0"], &["--sr"]),
    ];
    for (extra, needles) in cases {
        let mut args = vec!["spec", s(&clip), "-o", s(&png)];
        args.extend_from_slice(extra);
        assert_bad_input(&args, out.path(), needles);
    }
    let wav = out.path().join("x.wav");
    assert_bad_input(
        &["roundtrip", s(&clip), "-o", s(&wav), "--momentum", "1.5"],
        out.path(),
        &["--momentum"],
    );
    // Usage errors from the argument parser also exit with 2.
    let o = musicdiff(&["spec", s(&clip), "-o", s(&png), "--hop", "-3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!png.exists());
}

/// One exit-code rule for every subcommand: an output in a directory that does not exist is
/// the user's to fix (exit 2), with one line naming the path. (spec and roundtrip used to exit
/// 1 while generate, fill and continue exited 2; those three are checked in generate.rs.)
#[test]
fn missing_output_directory_is_exit_2_in_every_subcommand() {
    let clip = fixture("audio/clip_22k.wav");
    for (command, out) in [
        ("spec", "/nonexistent-dir/x.png"),
        ("roundtrip", "/nonexistent-dir/x.wav"),
    ] {
        let o = musicdiff(&[command, s(&clip), "-o", out]);
        assert_eq!(o.status.code(), Some(2), "{command}: {}", stderr(&o));
        assert_eq!(
            stderr(&o).trim_end(),
            format!("error: cannot write {out}: its directory does not exist"),
            "{command}"
        );
    }
}

#[test]
fn corpus_build_without_assets_says_how_to_install_them() {
    let out = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_musicdiff"))
        .env("MUSICDIFF_VOCODER", "griffin-lim")
        .args([
            "corpus",
            "build",
            "--out",
            s(&out.path().join("c")),
            "--hours",
            "0.01",
        ])
        .env("MUSICDIFF_ASSETS", out.path().join("no-assets-here"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("scripts/fetch-assets.sh"), "{err}");
    assert!(err.contains("no-assets-here"), "{err}");
    assert!(!out.path().join("c").exists());
}

#[test]
fn corpus_build_renders_a_tiny_corpus() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("corpus");
    let o = musicdiff(&[
        "-q",
        "corpus",
        "build",
        "--out",
        s(&dir),
        "--hours",
        "0.01",
        "--clip-seconds",
        "6",
        "--soundfont",
        "TimGM6mb.sf2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("6 rendered now"), "{}", stdout(&o));
    let lines = std::fs::read_to_string(dir.join("train/metadata.jsonl")).unwrap_or_default()
        + &std::fs::read_to_string(dir.join("test/metadata.jsonl")).unwrap_or_default();
    assert_eq!(lines.lines().count(), 6);
}

#[test]
fn data_stats_summarises_an_audiofolder() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train");
    std::fs::create_dir_all(&train).unwrap();
    for (name, secs) in [("a.wav", 3.0f32), ("b.wav", 12.0)] {
        let samples = vec![0.1f32; (secs * 8000.0) as usize];
        musicdiff_dsp::audio::write_wav(
            &train.join(name),
            &samples,
            8000,
            musicdiff_dsp::audio::WavFormat::Pcm16,
        )
        .unwrap();
    }
    std::fs::write(
        train.join("metadata.jsonl"),
        "{\"file_name\": \"a.wav\", \"text\": \"soft piano\", \"genre\": \"ambient\", \"instruments\": [\"piano\"]}\n\
         {\"file_name\": \"b.wav\", \"text\": \"loud drums\", \"genre\": \"rock\", \"instruments\": \"drums, bass\"}\n\
         {\"file_name\": \"c.wav\"}\n",
    )
    .unwrap();
    let o = musicdiff(&["data", "stats", s(dir.path()), "--caption-column", "text"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("2 clips (train 2)"), "{out}");
    assert!(out.contains("1 rows skipped"), "{out}");
    assert!(
        out.contains("min 3.0 s, median 12.0 s, max 12.0 s"),
        "{out}"
    );
    assert!(out.contains("top genres: ambient (1), rock (1)"), "{out}");
    assert!(
        out.contains("bass (1)") && out.contains("piano (1)"),
        "{out}"
    );
    assert!(
        out.contains("- soft piano") && out.contains("- loud drums"),
        "{out}"
    );
}

#[test]
fn data_prepare_writes_shards_and_refuses_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let shards = tiny_shards(dir.path());
    let data = dir.path().join("data");
    assert!(shards.join("manifest.json").exists());
    assert!(shards.join("shard-00000.safetensors").exists());

    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "window_seconds = 10.0\nwindow_secs = 3\n").unwrap();
    let o = musicdiff(&[
        "data",
        "prepare",
        "--data",
        s(&data),
        "--out",
        s(&dir.path().join("s2")),
        "--config",
        s(&cfg),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("bad.toml") && stderr(&o).contains("window_secs"),
        "{}",
        stderr(&o)
    );

    // Training on those shards with the tiny config, stopped and resumed.
    let tiny = tiny_config();
    let run = dir.path().join("run");
    let train_in = |config: &Path, out: &Path, extra: &[&str]| {
        let mut args = vec![
            "-q",
            "train",
            "--data",
            s(&shards),
            "--config",
            s(config),
            "--out",
            s(out),
        ];
        args.extend_from_slice(extra);
        musicdiff(&args)
    };
    let train = |extra: &[&str]| train_in(&tiny, &run, extra);
    let o = train(&["--max-steps", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("stopped at step 3 (--max-steps reached)"),
        "{}",
        stdout(&o)
    );
    assert!(
        run.join("checkpoints/step-00000003/ema.safetensors")
            .exists()
    );
    assert!(run.join("loss.png").exists());
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count(),
        3
    );
    // The same run directory again without --resume is refused, with a hint.
    let o = train(&["--max-steps", "4"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--resume"), "{}", stderr(&o));
    let o = train(&["--max-steps", "5", "--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("stopped at step 5"), "{}", stdout(&o));
    // Bad requests: a config key that does not exist, nothing to resume, a bad duration.
    let bad_cfg = dir.path().join("bad-train.toml");
    std::fs::write(
        &bad_cfg,
        std::fs::read_to_string(&tiny)
            .unwrap()
            .replace("[optim]", "[optim]\nlearning_rate = 1.0"),
    )
    .unwrap();
    let o = train_in(&bad_cfg, &dir.path().join("r2"), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("bad-train.toml") && stderr(&o).contains("learning_rate"),
        "{}",
        stderr(&o)
    );
    let o = train_in(&tiny, &dir.path().join("r3"), &["--resume"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no checkpoint to resume from"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("r3/checkpoints/latest").exists());
    let o = train_in(&tiny, &dir.path().join("r4"), &["--time-budget", "10"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("unit"), "{}", stderr(&o));
}
