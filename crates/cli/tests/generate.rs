//! End-to-end tests of `generate`, `fill`, `continue` and `export` on a tiny model trained for
//! a few steps here: lengths, kept audio bit for bit, determinism, long windowed generation,
//! sidecars, and a clear exit-2 error with no output for every bad request.

mod common;

use std::path::Path;

use common::{musicdiff, s, stderr, stdout, tiny_model};

/// Samples of a 16-bit WAV as integers (exact comparison).
fn pcm(path: &Path) -> Vec<i16> {
    let a = musicdiff_dsp::audio::decode_file(path).unwrap();
    assert_eq!(a.sample_rate, 22050);
    assert_eq!(a.channels.len(), 1);
    a.channels[0]
        .iter()
        .map(|&v| musicdiff_dsp::audio::to_pcm16(v))
        .collect()
}

fn sidecar(wav: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(wav.with_extension("json")).unwrap()).unwrap()
}

/// Flags that keep the debug-build tests quick.
const FAST: [&str; 4] = ["--steps", "3", "--gl-iters", "4"];

fn run(model: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["-q"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--model", s(model)]);
    for pair in FAST.chunks(2) {
        if !args.contains(&pair[0]) {
            all.extend_from_slice(pair);
        }
    }
    musicdiff(&all)
}

#[test]
fn generate_fill_and_continue_with_a_tiny_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();

    // Generate: WAV of the right length, PNG, sidecar with the request and the timing.
    let jig = |path: &Path, seed: &str| {
        run(
            &model,
            &[
                "generate",
                "fast jig played on fiddle",
                "--seconds",
                "2",
                "--genre",
                "folk",
                "--seed",
                seed,
                "-o",
                s(path),
            ],
        )
    };
    let a = out.join("a.wav");
    let o = jig(&a, "0");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("real-time factor"), "{}", stdout(&o));
    let samples = pcm(&a);
    assert_eq!(samples.len(), 44100);
    assert!(samples.iter().any(|&v| v != 0), "silent output");
    assert!(a.with_extension("png").exists());
    let j = sidecar(&a);
    assert_eq!(j["prompt"], "fast jig played on fiddle");
    assert_eq!(j["genre"], "folk");
    assert_eq!(j["seed"], 0);
    assert_eq!(j["steps"], 3);
    assert_eq!(j["sampler"], "dpm++2m");
    assert_eq!(j["model"]["id"], "musicdiff-tiny-3");
    assert_eq!(j["model"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(j["seconds"], 2.0);
    assert!(j["real_time_factor"].as_f64().unwrap() > 0.0);
    assert!(j["wall_seconds"].as_f64().unwrap() > 0.0);

    // Determinism: the same seed gives the same samples, another seed others.
    let b = out.join("b.wav");
    let o = jig(&b, "0");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(pcm(&a), pcm(&b), "same seed, different audio");
    let o = jig(&b, "1");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(pcm(&a), pcm(&b), "another seed, same audio");

    // Fill: outside the span bit-identical, inside new audio, same length.
    let f = out.join("filled.wav");
    let o = run(
        &model,
        &[
            "fill",
            s(&a),
            "--from",
            "0.5",
            "--to",
            "1.25",
            "piano",
            "-o",
            s(&f),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let filled = pcm(&f);
    let (x, y) = (11025, 27563);
    assert_eq!(filled.len(), samples.len());
    assert_eq!(filled[..x], samples[..x], "audio before the span changed");
    assert_eq!(filled[y..], samples[y..], "audio after the span changed");
    assert_ne!(filled[x..y], samples[x..y], "the span was not regenerated");
    let j = sidecar(&f);
    assert_eq!(j["task"], "fill");
    assert_eq!(j["input"]["from"], 0.5);

    // Continue: the input kept as the prefix, the length extended.
    let c = out.join("continued.wav");
    let o = run(
        &model,
        &["continue", s(&a), "--seconds", "1.5", "-o", s(&c)],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let continued = pcm(&c);
    assert_eq!(continued.len(), samples.len() + 33075);
    assert_eq!(
        continued[..samples.len()],
        samples[..],
        "the prefix changed"
    );
    assert!(continued[samples.len()..].iter().any(|&v| v != 0));

    // Long generation: many model windows (the tiny window is 0.74 s), each continuing the last.
    let l = out.join("long.wav");
    let o = run(
        &model,
        &["generate", "swing jazz", "--seconds", "12", "-o", s(&l)],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(pcm(&l).len(), 12 * 22050);
    assert!(sidecar(&l)["windows"].as_u64().unwrap() >= 16);

    // Every sampler runs; variations get their own files and seeds.
    for sampler in ["ddim", "euler", "heun"] {
        let p = out.join(format!("{sampler}.wav"));
        let o = run(
            &model,
            &[
                "generate",
                "x",
                "--seconds",
                "1",
                "--sampler",
                sampler,
                "--no-png",
                "-o",
                s(&p),
            ],
        );
        assert!(o.status.success(), "{sampler}: {}", stderr(&o));
        assert!(!p.with_extension("png").exists());
        assert_eq!(sidecar(&p)["sampler"], sampler);
    }
    let v = out.join("v.wav");
    let o = run(
        &model,
        &[
            "generate",
            "x",
            "--seconds",
            "1",
            "--variations",
            "2",
            "-o",
            s(&v),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (v1, v2) = (out.join("v-1.wav"), out.join("v-2.wav"));
    assert_ne!(pcm(&v1), pcm(&v2));
    assert_eq!(sidecar(&v2)["seed"], 1);
}

/// Exit code 2, one error line (clap adds a usage hint to its own) containing every needle, and
/// nothing written to `out`.
fn assert_refused(model: &Path, args: &[&str], out: &Path, needles: &[&str]) {
    let o = run(model, args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    let errors = err.lines().filter(|l| l.starts_with("error")).count();
    assert_eq!(errors, 1, "one error line expected: {err}");
    for n in needles {
        assert!(err.contains(n), "expected '{n}' in: {err}");
    }
    let left: Vec<_> = std::fs::read_dir(out).unwrap().collect();
    assert!(left.is_empty(), "{args:?} left output behind: {left:?}");
}

#[test]
fn bad_requests_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let input = dir.path().join("data/a.wav"); // 6 s
    let o = out.join("o.wav");
    let o = s(&o);

    // Spans outside the input, or empty, or reversed.
    assert_refused(
        &model,
        &["fill", s(&input), "--from", "5", "--to", "7", "-o", o],
        &out,
        &["span", "6.000 s long"],
    );
    assert_refused(
        &model,
        &["fill", s(&input), "--from", "-1", "--to", "1", "-o", o],
        &out,
        &["span"],
    );
    assert_refused(
        &model,
        &["fill", s(&input), "--from", "2", "--to", "1", "-o", o],
        &out,
        &["span"],
    );
    // Negative and absurd durations.
    assert_refused(
        &model,
        &["generate", "x", "--seconds", "-3", "-o", o],
        &out,
        &["seconds"],
    );
    assert_refused(
        &model,
        &["generate", "x", "--seconds", "1e6", "-o", o],
        &out,
        &["seconds", "600"],
    );
    assert_refused(
        &model,
        &["continue", s(&input), "--seconds", "0", "-o", o],
        &out,
        &["seconds"],
    );
    assert_refused(
        &model,
        &["generate", "x", "--steps", "0", "-o", o],
        &out,
        &["steps"],
    );
    assert_refused(
        &model,
        &["generate", "x", "--cfg", "-2", "-o", o],
        &out,
        &["cfg"],
    );
    assert_refused(
        &model,
        &["generate", "x", "--sampler", "plms", "-o", o],
        &out,
        &["plms"],
    );
    // A missing input file.
    let missing = dir.path().join("nope.wav");
    assert_refused(
        &model,
        &["continue", s(&missing), "--seconds", "1", "-o", o],
        &out,
        &["nope.wav"],
    );

    // An output directory that does not exist: exit 2 as in every subcommand.
    for args in [
        vec!["generate", "x", "-o", "/nonexistent-dir/o.wav"],
        vec![
            "fill",
            s(&input),
            "--from",
            "1",
            "--to",
            "2",
            "-o",
            "/nonexistent-dir/o.wav",
        ],
        vec![
            "continue",
            s(&input),
            "--seconds",
            "1",
            "-o",
            "/nonexistent-dir/o.wav",
        ],
    ] {
        assert_refused(&model, &args, &out, &["/nonexistent-dir", "does not exist"]);
    }

    // Missing model files.
    let refused =
        |m: &Path, needles: &[&str]| assert_refused(m, &["generate", "x", "-o", o], &out, needles);
    // A copy of the model's files in `files`, in a new directory `name`.
    let copy = |name: &str, files: &[&str]| {
        let to = dir.path().join(name);
        std::fs::create_dir_all(&to).unwrap();
        for f in files {
            std::fs::copy(model.join(f), to.join(f)).unwrap();
        }
        to
    };
    refused(&copy("empty-model", &[]), &["model.json", "missing"]);
    refused(
        &copy("no-weights", &["model.json"]),
        &["model.safetensors", "missing"],
    );
    refused(&dir.path().join("absent"), &["absent", "not found"]);

    // A config that does not match the weights, and weights that do not match their hash.
    let both = ["model.json", "model.safetensors"];
    let mismatched = copy("mismatched", &both);
    let meta = std::fs::read_to_string(model.join("model.json")).unwrap();
    let wider = meta.replacen("\"d_model\": 32", "\"d_model\": 48", 1);
    assert_ne!(
        meta, wider,
        "the tiny config's d_model changed; update this test"
    );
    std::fs::write(mismatched.join("model.json"), wider).unwrap();
    refused(&mismatched, &["model.safetensors", "does not fit"]);
    let tampered = copy("tampered", &both);
    let mut w = std::fs::read(tampered.join("model.safetensors")).unwrap();
    let last = w.len() - 1;
    w[last] ^= 1;
    std::fs::write(tampered.join("model.safetensors"), w).unwrap();
    refused(&tampered, &["SHA-256", "model.safetensors"]);
}

/// The samples of a WAV as f32 bit patterns (exact comparison of float files).
fn bits(path: &Path) -> Vec<u32> {
    let a = musicdiff_dsp::audio::decode_file(path).unwrap();
    assert_eq!((a.sample_rate, a.channels.len()), (22050, 1));
    a.channels[0].iter().map(|v| v.to_bits()).collect()
}

/// Regression: a fill of an input whose name is not UTF-8 sampled everything, then panicked
/// (exit 101) writing the path into the sidecar.
#[cfg(unix)]
#[test]
fn fill_accepts_a_non_utf8_input_path() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join(OsStr::from_bytes(b"in-\xff.wav"));
    std::fs::copy(dir.path().join("data/a.wav"), &input).unwrap();
    let output = dir.path().join(OsStr::from_bytes(b"out-\xfe.wav"));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_musicdiff"))
        .env("MUSICDIFF_VOCODER", "griffin-lim")
        .args(["-q", "fill"])
        .arg(&input)
        .args(["--from", "1", "--to", "1.5", "--model", s(&model)])
        .args(FAST)
        .arg("-o")
        .arg(&output)
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}: {}", o.status, stderr(&o));
    assert_eq!(pcm(&output).len(), 6 * 22050);
    assert!(output.with_extension("png").exists());
    let j = sidecar(&output);
    assert!(
        j["input"]["path"]
            .as_str()
            .unwrap()
            .ends_with("in-\u{fffd}.wav"),
        "{}",
        j["input"]["path"]
    );
    assert!(stdout(&o).contains("out-\u{fffd}.wav"), "{}", stdout(&o));
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Regression: the WAV was renamed into place before the picture and the sidecar were written,
/// so a failing sidecar left the WAV behind (and a fill with `-o` equal to its input had
/// already replaced the input). A directory in the way makes a write fail even as root.
#[test]
fn a_failed_sidecar_leaves_no_output_and_the_input_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();

    // Generate: the picture cannot be written.
    let g = out.join("g.wav");
    std::fs::create_dir(out.join("g.png")).unwrap();
    let o = run(&model, &["generate", "x", "--seconds", "1", "-o", s(&g)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("g.png"), "{}", stderr(&o));
    assert_eq!(names(&out), ["g.png"]);

    // Variations: the second one's sidecar cannot be written; the first is not left either.
    let v = out.join("v.wav");
    std::fs::create_dir(out.join("v-2.json")).unwrap();
    let o = run(
        &model,
        &[
            "generate",
            "x",
            "--seconds",
            "1",
            "--variations",
            "2",
            "-o",
            s(&v),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(names(&out), ["g.png", "v-2.json"]);

    // Fill in place: the sidecar cannot be written, the input keeps its bytes.
    let input = out.join("in.wav");
    std::fs::copy(dir.path().join("data/a.wav"), &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    std::fs::create_dir(out.join("in.json")).unwrap();
    let fill_in_place = [
        "fill",
        s(&input),
        "--from",
        "1",
        "--to",
        "1.5",
        "-o",
        s(&input),
    ];
    let o = run(&model, &fill_in_place);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(std::fs::read(&input).unwrap(), before, "the input changed");
    assert_eq!(names(&out), ["g.png", "in.json", "in.wav", "v-2.json"]);

    // With the way clear, fill in place works and replaces the input.
    std::fs::remove_dir(out.join("in.json")).unwrap();
    let o = run(&model, &fill_in_place);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(std::fs::read(&input).unwrap(), before);
    assert!(input.with_extension("json").is_file());
}

/// Regression: a float input's samples beyond full scale came back clipped to 16 bits,
/// though audio outside the span is documented to be kept bit for bit.
#[test]
fn fill_keeps_float_input_above_full_scale_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join("loud.wav");
    let samples: Vec<f32> = (0..22050 * 6)
        .map(|i| (i as f32 * 0.05).sin() * 1.25 + 1e-7 * (i % 7) as f32)
        .collect();
    let over = samples.iter().filter(|v| v.abs() > 1.0).count();
    assert!(over > 1000);
    musicdiff_dsp::audio::write_wav(
        &input,
        &samples,
        22050,
        musicdiff_dsp::audio::WavFormat::Float32,
    )
    .unwrap();
    let want = bits(&input);
    let f = dir.path().join("filled.wav");
    let fill = |extra: &[&str]| {
        let mut args = vec!["fill", s(&input), "--from", "3", "--to", "3.2", "-o", s(&f)];
        args.extend_from_slice(extra);
        run(&model, &args)
    };
    let o = fill(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("clipped"), "{}", stderr(&o));
    let got = bits(&f);
    let (a, b) = (66150, 70560);
    assert_eq!(got.len(), want.len());
    assert!(got[..a] == want[..a], "audio before the span changed");
    assert!(got[b..] == want[b..], "audio after the span changed");
    assert_eq!(sidecar(&f)["sample_format"], "float32");

    // Asked for 16 bits, the clipping is announced with its count (even with -q).
    let o = fill(&["--pcm16"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let clipped: usize = err
        .split("warning: ")
        .nth(1)
        .and_then(|w| w.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no clipping warning: {err}"));
    assert!(clipped >= over - (b - a), "{clipped} < {over}: {err}");
    assert!(err.contains("clipped"), "{err}");
    assert_eq!(sidecar(&f)["sample_format"], "pcm16");
}

/// Regression: a fill in the middle of a long input sampled a second window for the padding
/// after the cropped piece, doubling the sampling time.
#[test]
fn a_short_fill_in_a_long_input_samples_one_window() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join("data/a.wav"); // 6 s, the tiny window is 0.74 s
    let f = dir.path().join("f.wav");
    let o = run(
        &model,
        &["fill", s(&input), "--from", "3", "--to", "3.2", "-o", s(&f)],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(sidecar(&f)["windows"], 1);
    let (before, after) = (pcm(&input), pcm(&f));
    let (a, b) = (66150, 70560);
    assert_eq!(after.len(), before.len());
    assert_eq!(after[..a], before[..a], "audio before the span changed");
    assert_eq!(after[b..], before[b..], "audio after the span changed");
    assert_ne!(after[a..b], before[a..b], "the span was not regenerated");
}

/// Regression: `--seed 18446744073709551615 --variations 2` gave the second variation seed 0.
#[test]
fn variation_seeds_past_the_largest_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let v = out.join("v.wav");
    let max = u64::MAX.to_string();
    assert_refused(
        &model,
        &[
            "generate",
            "x",
            "--seed",
            &max,
            "--variations",
            "2",
            "-o",
            s(&v),
        ],
        &out,
        &["seed", &max],
    );
    // The largest seed itself is fine for one result.
    let o = run(
        &model,
        &[
            "generate",
            "x",
            "--seconds",
            "0.5",
            "--seed",
            &max,
            "-o",
            s(&v),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(sidecar(&v)["seed"], u64::MAX);
}

/// Regression: f32 settings reached sidecars and messages as f64 noise ("5.900000095367432").
#[test]
fn sidecar_numbers_are_written_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let input = dir.path().join("data/a.wav");
    let f = dir.path().join("f.wav");
    let o = run(
        &model,
        &[
            "fill",
            s(&input),
            "--from",
            "5.1",
            "--to",
            "5.9",
            "--cfg",
            "1.3",
            "--overlap",
            "0.1",
            "-o",
            s(&f),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let j = sidecar(&f);
    let text = std::fs::read_to_string(f.with_extension("json")).unwrap();
    assert_eq!(j["input"]["from"].as_f64(), Some(5.1), "{text}");
    assert_eq!(j["input"]["to"].as_f64(), Some(5.9), "{text}");
    assert_eq!(j["cfg"].as_f64(), Some(1.3), "{text}");
    assert_eq!(j["overlap_seconds"].as_f64(), Some(0.1), "{text}");
    assert!(stdout(&o).contains("(6 s, 0.8 s new)"), "{}", stdout(&o));
}
