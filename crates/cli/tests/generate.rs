//! End-to-end tests of `generate`, `fill`, `continue` and `export` on a tiny model trained for
//! a few steps here: lengths, kept audio bit for bit, determinism, long windowed generation,
//! sidecars, and a clear exit-2 error with no output for every bad request.

mod common;

use std::path::{Path, PathBuf};

use common::{musicdiff, s, stderr, stdout, tiny_config, tiny_shards};

/// Trains the tiny config for 3 steps and exports it.
fn tiny_model(dir: &Path) -> PathBuf {
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
        assert_refused(&model, &args, &out, &["/nonexistent-dir/o.wav"]);
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
    refused(&dir.path().join("absent"), &["absent", "missing"]);

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
