//! Training end to end on a tiny synthetic dataset (tones with captions, prepared by
//! `musicdiff-dataset` with the real MiniLM encoder): shapes of every shipped config, overfitting
//! one batch, save/load, exact resume, and the masks.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use burn::optim::GradientsParams;
use burn::prelude::*;
use musicdiff_common::{Rng, assets};
use musicdiff_dataset::prepare::{self, PrepareConfig};
use musicdiff_dataset::{Loader, Split};
use musicdiff_diffusion::masks::MaskKind;
use musicdiff_dsp::audio::{WavFormat, write_wav};
use musicdiff_model::io as weights;
use musicdiff_text::TextEncoder;
use musicdiff_train::batch::{self, FieldVectors};
use musicdiff_train::optim::AdamW;
use musicdiff_train::{Options, StopReason, TrainConfig};

fn config_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs/train")
        .join(format!("{name}.toml"))
}

fn tiny() -> TrainConfig {
    TrainConfig::load(&config_path("tiny")).unwrap()
}

fn encoder() -> TextEncoder {
    TextEncoder::load(
        &assets::minilm().expect("run scripts/fetch-assets.sh"),
        &Device::flex(),
    )
    .unwrap()
}

/// Six captioned clips of chords (train) and one (test), prepared into shards of 2 records.
fn prepared() -> (tempfile::TempDir, tempfile::TempDir) {
    prepared_at(110.0)
}

/// [`prepared`] with tones from `base` Hz up: another base gives other clips.
fn prepared_at(base: f32) -> (tempfile::TempDir, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let sr = 22050;
    for (split, clips) in [("train", 6), ("test", 1)] {
        let dir = data.path().join(split);
        std::fs::create_dir_all(&dir).unwrap();
        let mut meta = String::new();
        for c in 0..clips {
            let f0 = base * (1.0 + c as f32 * 0.37) + if split == "test" { 17.0 } else { 0.0 };
            let wave: Vec<f32> = (0..sr * 3)
                .map(|i| {
                    let t = i as f32 / sr as f32;
                    let env = 0.5 + 0.5 * (std::f32::consts::TAU * 2.0 * t).sin();
                    0.2 * env
                        * ((std::f32::consts::TAU * f0 * t).sin()
                            + 0.5 * (std::f32::consts::TAU * 1.5 * f0 * t).sin())
                })
                .collect();
            let name = format!("{split}{c}.wav");
            write_wav(&dir.join(&name), &wave, sr as u32, WavFormat::Pcm16).unwrap();
            meta += &format!(
                "{{\"file_name\": \"{name}\", \"caption\": \"a tone at {f0:.0} hertz\", \"genre\": \"{}\", \"artist\": \"oscillator\"}}\n",
                if c % 2 == 0 { "drone" } else { "ambient" }
            );
        }
        std::fs::write(dir.join("metadata.jsonl"), meta).unwrap();
    }
    let shards = tempfile::tempdir().unwrap();
    let cfg = PrepareConfig {
        window_seconds: 2.0,
        window_hop_seconds: 1.0,
        min_seconds: 1.0,
        records_per_shard: 2,
        ..Default::default()
    };
    prepare::prepare(data.path(), shards.path(), &cfg, &encoder(), &|_, _| {}).unwrap();
    (data, shards)
}

fn options(shards: &Path, out: &Path, cfg: TrainConfig) -> Options {
    Options {
        data: shards.to_path_buf(),
        out: out.to_path_buf(),
        config: cfg,
        resume: false,
        init_from: None,
        max_steps: None,
        time_budget: None,
        text_model: assets::minilm().unwrap(),
    }
}

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
fn every_shipped_config_builds_a_model_of_the_right_shapes() {
    use musicdiff_model::{CondExample, Conditioning, DitInput, Keep};
    let device = Device::flex();
    for name in ["tiny", "small", "small-finetune", "base"] {
        let cfg = TrainConfig::load(&config_path(name)).unwrap().model;
        assert_eq!(
            cfg.output_rank(),
            cfg.patch_dim(),
            "{name}: the output head must reach every value of a token (see head_hidden)"
        );
        let model = cfg.init(&device);
        // Full windows for tiny; a 4-token prefix for the large ones (the shapes do not depend
        // on the length, and base's full forward is slow in a test).
        let n = if name == "tiny" { cfg.tokens() } else { 4 };
        let pd = cfg.patch_dim();
        let ex = CondExample {
            tokens: vec![0.1; 3 * cfg.text_dim],
            n_tokens: 3,
            sentence: vec![0.1; cfg.text_dim],
            genre: Some(vec![0.2; cfg.text_dim]),
            artist: None,
            seconds_start: 0.0,
            seconds_total: 12.0,
            controls: Default::default(),
            keep: Keep::ALL,
        };
        let cond = Conditioning::from_examples(&[ex.clone(), ex], &cfg, &device).unwrap();
        let input = DitInput {
            noisy: Tensor::ones([2, n, pd], &device),
            known: Tensor::zeros([2, n, pd], &device),
            mask: Tensor::zeros([2, n, 1], &device),
            t: Tensor::from_floats([0.3, 0.9], &device),
        };
        let (memory, valid) = model.cond.sequence(&cond);
        assert_eq!(memory.dims(), [2, 1 + 3 + 4, cfg.d_model], "{name}");
        assert_eq!(valid.dims(), [2, 1 + 3 + 4], "{name}");
        assert_eq!(model.forward(input, &cond).dims(), [2, n, pd], "{name}");
    }
}

#[test]
fn the_tiny_model_overfits_one_batch() {
    let (_data, shards) = prepared();
    let cfg = tiny();
    let device = Device::flex().autodiff();
    device.seed(1);
    let loader = Loader::open(shards.path(), Split::Train, 4, 0).unwrap();
    let b = loader.epoch(0).next().unwrap().unwrap();
    let mut fields = FieldVectors::default();
    fields.add(&b, &encoder()).unwrap();
    let mut rng = Rng::for_item(3, 0);
    // One fixed batch: same crops, times, masks and noise at every step.
    let sb = batch::make(
        &b,
        &cfg,
        &mut rng,
        &fields,
        256.0 / 22050.0,
        batch::Draw::ANY,
        &device,
    )
    .unwrap();
    let mut model = cfg.model.init(&device);
    let mut opt = AdamW::new(&cfg.optim);
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..150 {
        let loss = batch::loss(model.forward(sb.input.clone(), &sb.cond), &sb);
        last = loss.clone().into_scalar::<f64>();
        first.get_or_insert(last);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = opt.step(model, grads, 3e-3).0;
    }
    let first = first.unwrap();
    assert!(
        last < 0.1 * first,
        "loss {first:.4} -> {last:.4}: less than a 90% drop"
    );
}

#[test]
fn saved_weights_load_into_identical_outputs_and_refuse_other_configs() {
    use musicdiff_model::{CondExample, Conditioning, DitInput, Keep};
    let device = Device::flex();
    let mut cfg = tiny().model;
    cfg.absolute = musicdiff_model::AbsoluteKind::Learned;
    // adaLN-zero makes an untrained model output zeros: take one optimiser step first so that
    // every parameter, the zero-initialised ones included, holds something to compare.
    let ad = Device::flex().autodiff();
    let trainable = cfg.init(&ad);
    let probe = DitInput {
        noisy: Tensor::ones([1, cfg.tokens(), cfg.patch_dim()], &ad),
        known: Tensor::zeros([1, cfg.tokens(), cfg.patch_dim()], &ad),
        mask: Tensor::zeros([1, cfg.tokens(), 1], &ad),
        t: Tensor::from_floats([0.5], &ad),
    };
    let probe_cond = Conditioning::from_examples(
        &[CondExample {
            tokens: vec![0.5; cfg.text_dim],
            n_tokens: 1,
            sentence: vec![0.5; cfg.text_dim],
            genre: None,
            artist: None,
            seconds_start: 0.0,
            seconds_total: 5.0,
            controls: Default::default(),
            keep: Keep::ALL,
        }],
        &cfg,
        &ad,
    )
    .unwrap();
    let loss = (trainable.forward(probe, &probe_cond) - 1.0)
        .powi_scalar(2)
        .mean();
    let grads = GradientsParams::from_grads(loss.backward(), &trainable);
    let model = AdamW::new(&tiny().optim)
        .step(trainable, grads, 1e-2)
        .0
        .valid();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    weights::save(&model, &path).unwrap();
    let back = weights::load(&cfg, &path, &device).unwrap();
    let (n, pd) = (cfg.tokens(), cfg.patch_dim());
    let noisy: Vec<f32> = (0..n * pd)
        .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
        .collect();
    let input = DitInput {
        noisy: Tensor::from_data(TensorData::new(noisy, [1, n, pd]), &device),
        known: Tensor::zeros([1, n, pd], &device),
        mask: Tensor::zeros([1, n, 1], &device),
        t: Tensor::from_floats([0.5], &device),
    };
    let cond = Conditioning::from_examples(
        &[CondExample {
            tokens: vec![0.3; 2 * cfg.text_dim],
            n_tokens: 2,
            sentence: vec![0.1; cfg.text_dim],
            genre: None,
            artist: None,
            seconds_start: 1.0,
            seconds_total: 20.0,
            controls: Default::default(),
            keep: Keep::ALL,
        }],
        &cfg,
        &device,
    )
    .unwrap();
    let a: Vec<f32> = model
        .forward(input.clone(), &cond)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let b: Vec<f32> = back
        .forward(input, &cond)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert!(
        a.iter().any(|&v| v.abs() > 1e-4),
        "outputs should not be all zero"
    );
    assert_eq!(a, b);
    // A different architecture is refused with the file named.
    let mut other = cfg.clone();
    other.depth = 3;
    let err = weights::load(&other, &path, &device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("w.safetensors") && err.contains("does not fit"),
        "{err}"
    );
}

#[test]
fn resuming_gives_the_same_loss_curve_as_an_uninterrupted_run() {
    let (_data, shards) = prepared();
    let mut cfg = tiny();
    cfg.optim.steps = 8;
    cfg.run.checkpoint_every = 3;
    cfg.run.eval_every = 4;
    let stop = AtomicBool::new(false);
    let whole = tempfile::tempdir().unwrap();
    let outcome = musicdiff_train::train(
        &options(shards.path(), whole.path(), cfg.clone()),
        &stop,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(outcome.reason, StopReason::ScheduleDone);
    assert_eq!(outcome.step, 8);

    let parts = tempfile::tempdir().unwrap();
    let mut first = options(shards.path(), parts.path(), cfg.clone());
    first.max_steps = Some(5);
    let o = musicdiff_train::train(&first, &stop, &mut |_| {}).unwrap();
    assert_eq!((o.step, o.reason), (5, StopReason::MaxSteps));
    // A run directory with a checkpoint is not overwritten without --resume.
    let err = musicdiff_train::train(&first, &stop, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("--resume"), "{err}");
    let mut second = options(shards.path(), parts.path(), cfg);
    second.resume = true;
    let o = musicdiff_train::train(&second, &stop, &mut |_| {}).unwrap();
    assert_eq!((o.step, o.reason), (8, StopReason::ScheduleDone));

    let (a, b) = (losses(whole.path()), losses(parts.path()));
    assert_eq!(a.len(), 8);
    assert_eq!(a, b, "resumed loss curve differs");
    // 12 training windows at batch 4: the 8 steps crossed two epoch boundaries; eval ran.
    let metrics = std::fs::read_to_string(parts.path().join("metrics.jsonl")).unwrap();
    assert!(metrics.contains("eval_prefix"));
    // Each evaluation also scores the full task without conditioning, on the same examples
    // and noise: a finite loss that the dropped conditioning changes.
    let evals: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v.get("eval_full").is_some())
        .collect();
    assert_eq!(evals.len(), 2);
    for v in &evals {
        let (full, uncond) = (
            v["eval_full"].as_f64().unwrap(),
            v["eval_full_uncond"].as_f64(),
        );
        let uncond = uncond.expect("eval_full_uncond in every evaluation line");
        assert!(uncond.is_finite() && uncond > 0.0, "{v}");
        assert_ne!(
            uncond, full,
            "dropping the conditioning changed nothing: {v}"
        );
    }
    assert!(parts.path().join("loss.png").exists());
    // Same EMA values, tensor by tensor (the files' bytes may differ: burn-store writes its
    // metadata map in no fixed order).
    let tensors = |run: &Path| -> Vec<(String, Vec<u8>)> {
        let bytes = std::fs::read(run.join("checkpoints/step-00000008/ema.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut v: Vec<(String, Vec<u8>)> = st
            .tensors()
            .into_iter()
            .map(|(n, t)| (n, t.data().to_vec()))
            .collect();
        v.sort();
        v
    };
    let (ea, eb) = (tensors(whole.path()), tensors(parts.path()));
    assert!(!ea.is_empty());
    assert!(ea == eb, "EMA weights differ after resume");
}

#[test]
fn a_new_run_starts_from_another_runs_weights_with_an_added_head_branch() {
    let (_data, shards) = prepared();
    let stop = AtomicBool::new(false);
    // A run with the linear head alone, as models were before `head_hidden`.
    let mut old = tiny();
    old.model.head_hidden = None;
    old.optim.steps = 3;
    let first = tempfile::tempdir().unwrap();
    musicdiff_train::train(
        &options(shards.path(), first.path(), old),
        &stop,
        &mut |_| {},
    )
    .unwrap();

    let mut cfg = tiny();
    assert!(cfg.model.head_hidden.is_some());
    cfg.optim.steps = 2;
    cfg.run.eval_every = 1;
    let second = tempfile::tempdir().unwrap();
    let mut opts = options(shards.path(), second.path(), cfg.clone());
    opts.init_from = Some(first.path().to_path_buf());
    let mut notes = Vec::new();
    let o = musicdiff_train::train(&opts, &stop, &mut |e| {
        if let musicdiff_train::Event::Note(n) = e {
            notes.push(n)
        }
    })
    .unwrap();
    assert_eq!(o.step, 2);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("after 3 steps") && n.contains("last.branch.fc2.weight")),
        "{notes:?}"
    );
    let state =
        musicdiff_train::checkpoint::read_state(&second.path().join("checkpoints/step-00000002"))
            .unwrap();
    let init = state.init.expect("the origin is recorded");
    assert_eq!(init.step, 3);
    assert_eq!(init.fresh.len(), 4, "{:?}", init.fresh);

    // Another width does not fit: the error names the checkpoint.
    let mut wide = tiny();
    wide.model.d_model = 64;
    let third = tempfile::tempdir().unwrap();
    let mut opts = options(shards.path(), third.path(), wide);
    opts.init_from = Some(first.path().to_path_buf());
    let err = musicdiff_train::train(&opts, &stop, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("step-00000003"), "{err}");
    // A directory without checkpoints is refused by name.
    let mut opts = options(shards.path(), third.path(), tiny());
    opts.init_from = Some(third.path().join("nothing"));
    let err = musicdiff_train::train(&opts, &stop, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("nothing"), "{err}");
}

#[test]
fn masks_keep_what_they_keep() {
    for prediction in [
        musicdiff_model::Prediction::V,
        musicdiff_model::Prediction::X0,
    ] {
        let mut cfg = tiny();
        cfg.model.prediction = prediction;
        masks_keep_what_they_keep_for(cfg);
    }
}

fn masks_keep_what_they_keep_for(cfg: TrainConfig) {
    let (_data, shards) = prepared();
    let device = Device::flex();
    let loader = Loader::open(shards.path(), Split::Train, 4, 0).unwrap();
    let b = loader.epoch(0).next().unwrap().unwrap();
    let mut fields = FieldVectors::default();
    fields.add(&b, &encoder()).unwrap();
    let d = cfg.model.patch_dim();
    for kind in [
        MaskKind::Full,
        MaskKind::Spans,
        MaskKind::Prefix,
        MaskKind::Scattered,
    ] {
        let mut rng = Rng::for_item(9, 1);
        let sb = batch::make(
            &b,
            &cfg,
            &mut rng,
            &fields,
            0.0116,
            batch::Draw::task(kind),
            &device,
        )
        .unwrap();
        let mask: Vec<f32> = sb
            .input
            .mask
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let generate: Vec<f32> = sb.generate.clone().into_data().try_to_vec::<f32>().unwrap();
        let known: Vec<f32> = sb
            .input
            .known
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let noisy: Vec<f32> = sb
            .input
            .noisy
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let target: Vec<f32> = sb.target.clone().into_data().try_to_vec::<f32>().unwrap();
        let t: Vec<f32> = sb.input.t.clone().into_data().try_to_vec::<f32>().unwrap();
        for (tok, (&m, &g)) in mask.iter().zip(&generate).enumerate() {
            assert_eq!(m + g, 1.0, "known and generated partition the tokens");
            let row = tok * d..(tok + 1) * d;
            if m == 0.0 {
                assert!(
                    known[row].iter().all(|&v| v == 0.0),
                    "nothing known where generated"
                );
            } else {
                // Known values are the clean patch: the x0 target itself, or from the v
                // target: x0 = alpha x_t - sigma v.
                let ex = tok / cfg.model.tokens();
                let (cx, co) = cfg.objective().x0_coefficients(t[ex] as f64);
                for i in row {
                    let x0 = cx * noisy[i] + co * target[i];
                    assert!((known[i] - x0).abs() < 1e-3, "{} vs {x0}", known[i]);
                }
            }
        }
        let kept = mask.iter().filter(|&&m| m == 1.0).count();
        match kind {
            MaskKind::Full => assert_eq!(kept, 0),
            _ => assert!(kept > 0 && kept < mask.len()),
        }
    }
}

#[test]
fn training_clip_hashes_follow_the_weights_through_init_from_and_export() {
    use musicdiff_pipeline::model_dir::TRAINING_CLIPS;
    let read = |dir: &Path| -> Vec<String> {
        std::fs::read_to_string(dir.join(TRAINING_CLIPS))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let stop = AtomicBool::new(false);
    let mut cfg = tiny();
    cfg.optim.steps = 1;
    // A first run on six clips records their six hashes.
    let (_a, shards_a) = prepared();
    let first = tempfile::tempdir().unwrap();
    musicdiff_train::train(
        &options(shards_a.path(), first.path(), cfg.clone()),
        &stop,
        &mut |_| {},
    )
    .unwrap();
    let first_hashes = read(first.path());
    assert_eq!(first_hashes.len(), 6);
    // A run on other clips that starts from its weights has seen both sets.
    let (_b, shards_b) = prepared_at(150.0);
    let second = tempfile::tempdir().unwrap();
    let mut opts = options(shards_b.path(), second.path(), cfg.clone());
    opts.init_from = Some(first.path().to_path_buf());
    musicdiff_train::train(&opts, &stop, &mut |_| {}).unwrap();
    let second_hashes = read(second.path());
    assert_eq!(second_hashes.len(), 12, "{second_hashes:?}");
    assert!(first_hashes.iter().all(|h| second_hashes.contains(h)));
    assert!(
        second_hashes.windows(2).all(|w| w[0] < w[1]),
        "sorted, distinct"
    );
    // Export carries the list beside the weights.
    let model = tempfile::tempdir().unwrap();
    let out = model.path().join("m");
    musicdiff_train::export::export(&export_options(second.path(), &out)).unwrap();
    assert_eq!(read(&out), second_hashes);
    // Starting from a run whose clips are unknown leaves no (incomplete) list, with a note.
    std::fs::remove_file(first.path().join(TRAINING_CLIPS)).unwrap();
    let third = tempfile::tempdir().unwrap();
    let mut opts = options(shards_b.path(), third.path(), cfg);
    opts.init_from = Some(first.path().to_path_buf());
    let mut notes = Vec::new();
    musicdiff_train::train(&opts, &stop, &mut |e| {
        if let musicdiff_train::Event::Note(n) = e {
            notes.push(n)
        }
    })
    .unwrap();
    assert!(!third.path().join(TRAINING_CLIPS).exists());
    assert!(
        notes.iter().any(|n| n.contains("not all known")),
        "{notes:?}"
    );
}

/// The tiny config with a schedule of `steps` steps, a checkpoint every step, `keep` kept.
fn short_config(steps: u64, keep: usize) -> TrainConfig {
    let mut cfg = tiny();
    cfg.optim.steps = steps;
    cfg.run.checkpoint_every = 1;
    cfg.run.keep_checkpoints = keep;
    cfg
}

/// A tiny run of `cfg` on `shards`, stopped after `max_steps`.
fn short_run(shards: &Path, cfg: TrainConfig, max_steps: u64) -> tempfile::TempDir {
    let run = tempfile::tempdir().unwrap();
    let mut opts = options(shards, run.path(), cfg);
    opts.max_steps = Some(max_steps);
    musicdiff_train::train(&opts, &AtomicBool::new(false), &mut |_| {}).unwrap();
    run
}

fn checkpoint_dirs(run: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step-"))
        .collect();
    v.sort();
    v
}

fn export_options(run: &Path, out: &Path) -> musicdiff_train::export::ExportOptions {
    musicdiff_train::export::ExportOptions {
        run: run.to_path_buf(),
        step: None,
        out: out.to_path_buf(),
        force: false,
        id: None,
        dtype: musicdiff_pipeline::model_dir::WeightDtype::F16,
        sampling: Default::default(),
        notes: None,
    }
}

#[test]
fn second_train_on_a_locked_run_is_refused() {
    let (_data, shards) = prepared();
    let run = tempfile::tempdir().unwrap();
    let (held, _) = musicdiff_train::lock::RunLock::take(run.path()).unwrap();
    let mut cfg = tiny();
    cfg.optim.steps = 1;
    let opts = options(shards.path(), run.path(), cfg);
    let stop = AtomicBool::new(false);
    let err = musicdiff_train::train(&opts, &stop, &mut |_| {}).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, musicdiff_train::TrainError::RunInUse { .. })
            && msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    // Nothing was written by the refused run.
    assert!(!run.path().join("metrics.jsonl").exists());
    assert!(!run.path().join("config.toml").exists());
    // Once the holder is gone the run goes ahead; a lock left by a killed run (its pid still in
    // the file) is taken over with a note.
    drop(held);
    std::fs::write(run.path().join("lock"), "4194999\n").unwrap();
    let mut notes = Vec::new();
    musicdiff_train::train(&opts, &stop, &mut |e| {
        if let musicdiff_train::Event::Note(n) = e {
            notes.push(n)
        }
    })
    .unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("pid 4194999") && n.contains("no longer holds it")),
        "{notes:?}"
    );
}

#[test]
fn resume_with_other_data_is_refused() {
    let (_data, shards) = prepared();
    let cfg = short_config(2, 2);
    let run = short_run(shards.path(), cfg.clone(), 2);
    let stop = AtomicBool::new(false);
    // The same prepared data moved elsewhere is the same data.
    let moved = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(shards.path()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), moved.path().join(e.file_name())).unwrap();
    }
    let mut opts = options(moved.path(), run.path(), cfg.clone());
    opts.resume = true;
    musicdiff_train::train(&opts, &stop, &mut |_| {}).unwrap();
    // Other data (prepared from other recordings) is refused, naming both sides.
    let (_other_raw, other) = prepared();
    let mut opts = options(other.path(), run.path(), cfg);
    opts.resume = true;
    let err = musicdiff_train::train(&opts, &stop, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("other data")
            && err.contains(&other.path().display().to_string())
            && err.contains("step-00000002")
            && !err.contains('\n'),
        "{err}"
    );
}

#[test]
fn keep_checkpoints_is_honoured_when_a_run_resumes() {
    let (_data, shards) = prepared();
    // Three checkpoints, as a run killed between writing its third and pruning leaves them
    // for keep_checkpoints = 2.
    let run = short_run(shards.path(), short_config(4, 3), 3);
    assert_eq!(checkpoint_dirs(run.path()).len(), 3);
    let mut cfg = short_config(4, 2);
    cfg.run.checkpoint_every = 10;
    let mut opts = options(shards.path(), run.path(), cfg);
    opts.resume = true;
    let mut at_start = None;
    let dir = run.path().to_path_buf();
    musicdiff_train::train(&opts, &AtomicBool::new(false), &mut |e| {
        if let musicdiff_train::Event::Started { .. } = e {
            at_start = Some(checkpoint_dirs(&dir));
        }
    })
    .unwrap();
    assert_eq!(
        at_start.unwrap(),
        ["step-00000002", "step-00000003"],
        "pruned when the run opened"
    );
    assert_eq!(
        checkpoint_dirs(run.path()),
        ["step-00000003", "step-00000004"]
    );
}

#[test]
fn an_oversized_batch_is_refused() {
    let (_data, shards) = prepared();
    let mut cfg = tiny();
    // 12 training windows: a batch of 13 cannot be filled.
    cfg.optim.batch_size = 13;
    let run = tempfile::tempdir().unwrap();
    let err = musicdiff_train::train(
        &options(shards.path(), run.path(), cfg),
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("12 training windows") && err.contains("batch_size 13"),
        "{err}"
    );
    assert!(!run.path().join("checkpoints").exists());
}

#[test]
fn export_refuses_nan_weights() {
    let (_data, shards) = prepared();
    let run = short_run(shards.path(), short_config(1, 1), 1);
    let ema = run.path().join("checkpoints/step-00000001/ema.safetensors");
    let mut bytes = std::fs::read(&ema).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let at =
        st.tensor("last.proj.bias").unwrap().data().as_ptr() as usize - bytes.as_ptr() as usize + 4;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&ema, &bytes).unwrap();
    let out = run.path().join("model");
    let err = musicdiff_train::export::export(&export_options(run.path(), &out))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("step-00000001") && err.contains("last.proj.bias") && err.contains("NaN"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
}

#[test]
fn exporting_the_same_checkpoint_twice_gives_identical_weights() {
    let (_data, shards) = prepared();
    let run = short_run(shards.path(), short_config(1, 1), 1);
    let weights: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let out = run.path().join(format!("model{i}"));
            musicdiff_train::export::export(&export_options(run.path(), &out)).unwrap();
            std::fs::read(out.join("model.safetensors")).unwrap()
        })
        .collect();
    assert!(weights[0] == weights[1] && weights[1] == weights[2]);
}

#[test]
fn export_does_not_overwrite_a_model_directory_without_force() {
    let (_data, shards) = prepared();
    let run = short_run(shards.path(), short_config(1, 1), 1);
    let out = run.path().join("model");
    let mut opts = export_options(run.path(), &out);
    musicdiff_train::export::export(&opts).unwrap();
    let card = out.join("README.md");
    std::fs::write(&card, "hand-written card").unwrap();
    let err = musicdiff_train::export::export(&opts)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&out.display().to_string()) && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&card).unwrap(), "hand-written card");
    opts.force = true;
    musicdiff_train::export::export(&opts).unwrap();
    assert_ne!(std::fs::read_to_string(&card).unwrap(), "hand-written card");
}

/// `bench/dit_params.json`: the parameter table (names, shapes, count) of the tiny and small
/// models, which `bench/bench_train.py` checks its PyTorch peer and the Rust benchmark binary
/// against. Run with `MUSICDIFF_WRITE_PARAMS=1` to rewrite it after a deliberate model change
/// (then bring `bench/dit_torch.py` in line).
#[test]
fn the_benchmark_parameter_table_matches_the_model() {
    let mut text = String::from(
        "{\n  \"about\": \"musicdiff's DiT parameters per config (burn names and shapes: a linear weight is [in, out]); written and checked by crates/train/tests/train.rs, the_benchmark_parameter_table_matches_the_model; bench/bench_train.py checks its PyTorch peer against it\",\n  \"configs\": {\n",
    );
    let names = ["small", "tiny"];
    for (i, name) in names.iter().enumerate() {
        let cfg = TrainConfig::load(&config_path(name)).unwrap().model;
        let model = cfg.init(&Device::flex());
        let table = weights::parameter_table(&model).unwrap();
        let count: usize = table.values().map(|s| s.iter().product::<usize>()).sum();
        assert_eq!(count, model.num_params(), "{name}");
        text +=
            &format!("    \"{name}\": {{\n      \"parameters\": {count},\n      \"tensors\": {{\n");
        let rows: Vec<String> = table
            .iter()
            .map(|(n, shape)| format!("        \"{n}\": {shape:?}"))
            .collect();
        text += &rows.join(",\n");
        text += "\n      }\n    }";
        text += if i + 1 < names.len() { ",\n" } else { "\n" };
    }
    text += "  }\n}\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/dit_params.json");
    if std::env::var_os("MUSICDIFF_WRITE_PARAMS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let first_difference = committed
        .lines()
        .zip(text.lines())
        .position(|(a, b)| a != b)
        .map_or("its length".to_string(), |l| format!("line {}", l + 1));
    assert!(
        committed == text,
        "bench/dit_params.json does not describe the model (first difference at {first_difference}): \
         if the model changed on purpose, rerun this test with MUSICDIFF_WRITE_PARAMS=1 and bring \
         bench/dit_torch.py (the PyTorch benchmark peer) in line"
    );
}

/// A vocoder directory with random weights, of the tiny vocoder config.
fn tiny_vocoder(dir: &Path) {
    tiny_vocoder_with(dir, musicdiff_vocoder::SynthesisPhase::Network);
}

/// [`tiny_vocoder`] synthesising its phases from `phase`.
fn tiny_vocoder_with(dir: &Path, phase: musicdiff_vocoder::SynthesisPhase) {
    use musicdiff_vocoder::dir::{TrainingInfo, VocoderMeta, WeightsInfo};
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/vocoder/tiny.toml");
    let mut cfg = musicdiff_train::vocoder::VocoderTrainConfig::load(&path)
        .unwrap()
        .model;
    cfg.synthesis_phase = phase;
    let device = Device::flex();
    device.seed(11);
    let net = musicdiff_vocoder::Vocos::new(&cfg, &device);
    let meta = VocoderMeta {
        format: String::new(),
        id: "test-vocoder".into(),
        config: cfg,
        weights: WeightsInfo {
            dtype: musicdiff_weights::WeightDtype::F32,
            sha256: String::new(),
            parameters: 0,
        },
        training: TrainingInfo {
            steps: 0,
            train_seconds: 0.0,
            audio_seconds_seen: 0.0,
            data: "none".into(),
            data_hours: 0.0,
            held_out: Default::default(),
        },
    };
    musicdiff_vocoder::dir::write(dir, &meta, &net, "test").unwrap();
}

/// The tiny config for `steps` steps, logging every step, no evaluation or samples.
fn every_step(steps: u64) -> TrainConfig {
    let mut cfg = tiny();
    cfg.optim.steps = steps;
    cfg.run.log_every = 1;
    cfg.run.eval_every = 0;
    cfg.run.sample_every = 0;
    cfg
}

/// `cfg` with the conversion term on through `vocoder`: every example scored (t_max 1), two
/// crops of 16 frames per step.
fn with_conversion(mut cfg: TrainConfig, vocoder: &Path) -> TrainConfig {
    cfg.conversion = musicdiff_train::conversion::ConversionConfig {
        weight: 1.0,
        vocoder: vocoder.to_path_buf(),
        t_max: 1.0,
        max_crops: 2,
        crop_frames: 16,
    };
    cfg
}

/// With a vocoder that takes its phases from its magnitude (PGHI), the term scores that
/// magnitude: finite, positive, on every step.
#[test]
fn the_conversion_term_scores_a_pghi_vocoders_magnitude() {
    let (_data, shards) = prepared();
    let voc = tempfile::tempdir().unwrap();
    tiny_vocoder_with(voc.path(), musicdiff_vocoder::SynthesisPhase::Pghi);
    let cfg = with_conversion(every_step(2), voc.path());
    let run = tempfile::tempdir().unwrap();
    let stop = AtomicBool::new(false);
    musicdiff_train::train(&options(shards.path(), run.path(), cfg), &stop, &mut |_| {}).unwrap();
    let text = std::fs::read_to_string(run.path().join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v.get("conversion").is_some())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    for v in &lines {
        let c = v["conversion"].as_f64().unwrap();
        assert!(c.is_finite() && c > 0.0, "{v}");
    }
}

#[test]
fn the_conversion_term_trains_resumes_exactly_and_needs_the_source_audio() {
    let (data, shards) = prepared();
    let voc = tempfile::tempdir().unwrap();
    tiny_vocoder(voc.path());
    let mut plain = every_step(6);
    plain.run.checkpoint_every = 3;
    let cfg = with_conversion(plain.clone(), voc.path());
    let stop = AtomicBool::new(false);
    let whole = tempfile::tempdir().unwrap();
    musicdiff_train::train(
        &options(shards.path(), whole.path(), cfg.clone()),
        &stop,
        &mut |_| {},
    )
    .unwrap();
    // Every step scored two crops, with a finite positive term, and timed it.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(whole.path().join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    for v in &lines {
        let c = v["conversion"].as_f64().expect("conversion logged");
        assert!(c.is_finite() && c > 0.0, "{v}");
        assert_eq!(v["conversion_crops"], 2, "{v}");
        assert!(v["conversion_time_share"].as_f64().unwrap() > 0.0, "{v}");
    }
    // Interrupted and resumed: the same curve (the crops depend on the step alone).
    let parts = tempfile::tempdir().unwrap();
    let mut first = options(shards.path(), parts.path(), cfg.clone());
    first.max_steps = Some(3);
    musicdiff_train::train(&first, &stop, &mut |_| {}).unwrap();
    let mut second = options(shards.path(), parts.path(), cfg.clone());
    second.resume = true;
    musicdiff_train::train(&second, &stop, &mut |_| {}).unwrap();
    assert_eq!(losses(whole.path()), losses(parts.path()));
    // The term changes training: the same run without it logs the same diffusion loss at step
    // 1 (same weights and batch) and another curve after it.
    let without = tempfile::tempdir().unwrap();
    musicdiff_train::train(
        &options(shards.path(), without.path(), plain),
        &stop,
        &mut |_| {},
    )
    .unwrap();
    let (a, b) = (losses(whole.path()), losses(without.path()));
    assert_eq!(a[0], b[0]);
    assert!(
        a[1..].iter().zip(&b[1..]).all(|(x, y)| x.1 != y.1),
        "{a:?} {b:?}"
    );
    // A resumed run must keep its conversion settings.
    let mut other = cfg.clone();
    other.conversion.weight = 0.5;
    let mut resumed = options(shards.path(), parts.path(), other);
    resumed.resume = true;
    resumed.max_steps = Some(7);
    let err = musicdiff_train::train(&resumed, &stop, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("conversion"), "{err}");
    // Without the source audio the term cannot run, and says why.
    drop(data);
    let gone = tempfile::tempdir().unwrap();
    let err = musicdiff_train::train(
        &options(shards.path(), gone.path(), cfg),
        &stop,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(err.is_bad_input());
    assert!(err.to_string().contains("source audio"), "{err}");
}

#[test]
fn a_new_run_starts_from_a_model_directory() {
    let (_data, shards) = prepared();
    let run = short_run(shards.path(), short_config(3, 1), 3);
    let model = tempfile::tempdir().unwrap();
    let dir = model.path().join("m");
    musicdiff_train::export::export(&export_options(run.path(), &dir)).unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut opts = options(shards.path(), out.path(), short_config(2, 1));
    opts.init_from = Some(dir.clone());
    let mut notes = Vec::new();
    musicdiff_train::train(&opts, &AtomicBool::new(false), &mut |e| {
        if let musicdiff_train::Event::Note(n) = e {
            notes.push(n)
        }
    })
    .unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.contains(&*dir.to_string_lossy()) && n.contains("after 3 steps")),
        "{notes:?}"
    );
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("checkpoints/step-00000002/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["init"]["step"], 3);
    // A damaged model directory is refused with the file named.
    let w = dir.join("model.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&w, bytes).unwrap();
    let again = tempfile::tempdir().unwrap();
    let mut opts = options(shards.path(), again.path(), short_config(2, 1));
    opts.init_from = Some(dir);
    let err = musicdiff_train::train(&opts, &AtomicBool::new(false), &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("SHA-256"), "{err}");
}
