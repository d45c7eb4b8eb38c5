//! `data prepare` end to end on a small AudioFolder written here: windows, shards, manifest,
//! bad inputs skipped with their reasons, byte-identical repeat runs and resumption.
//! Needs the MiniLM model from `scripts/fetch-assets.sh --minimal`.

use std::path::Path;

use burn::prelude::*;
use musicdiff_common::assets;
use musicdiff_dataset::prepare::{self, PrepareConfig};
use musicdiff_dsp::audio::{WavFormat, write_wav};
use musicdiff_text::TextEncoder;

fn tone(seconds: f64, freq: f32) -> Vec<f32> {
    (0..(seconds * 16000.0) as usize)
        .map(|i| (std::f32::consts::TAU * freq * i as f32 / 16000.0).sin() * 0.3)
        .collect()
}

/// train: 3 good clips (5 s, 12 s, 3 s), a corrupt file, a silent clip, a row without caption;
/// test: 1 good clip. Audio at 16 kHz, so preparing also resamples.
fn dataset(root: &Path) {
    let train = root.join("train");
    let test = root.join("test");
    std::fs::create_dir_all(&train).unwrap();
    std::fs::create_dir_all(&test).unwrap();
    for (name, secs, f) in [
        ("a.wav", 5.0, 220.0),
        ("b.wav", 12.0, 330.0),
        ("c.wav", 3.0, 440.0),
    ] {
        write_wav(&train.join(name), &tone(secs, f), 16000, WavFormat::Pcm16).unwrap();
    }
    write_wav(
        &train.join("quiet.wav"),
        &vec![0.0; 32000],
        16000,
        WavFormat::Pcm16,
    )
    .unwrap();
    std::fs::write(train.join("broken.wav"), b"RIFF....WAVEfmt garbage").unwrap();
    write_wav(
        &train.join("nocap.wav"),
        &tone(2.0, 100.0),
        16000,
        WavFormat::Pcm16,
    )
    .unwrap();
    std::fs::write(
        train.join("metadata.jsonl"),
        [
            r#"{"file_name": "a.wav", "caption": "a low tone", "genre": "test"}"#,
            r#"{"file_name": "b.wav", "caption": "a middle tone held for a long time"}"#,
            r#"{"file_name": "broken.wav", "caption": "never decoded"}"#,
            r#"{"file_name": "quiet.wav", "caption": "silence"}"#,
            r#"{"file_name": "nocap.wav"}"#,
            r#"{"file_name": "c.wav", "caption": "a high tone"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    write_wav(
        &test.join("d.wav"),
        &tone(4.0, 550.0),
        16000,
        WavFormat::Pcm16,
    )
    .unwrap();
    std::fs::write(
        test.join("metadata.csv"),
        "file_name,caption\nd.wav,held-out tone\n",
    )
    .unwrap();
}

fn config() -> PrepareConfig {
    PrepareConfig {
        window_seconds: 4.0,
        window_hop_seconds: 4.0,
        min_seconds: 2.0,
        records_per_shard: 2,
        ..Default::default()
    }
}

fn shard_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn prepare_writes_shards_skips_bad_input_and_is_deterministic() {
    let device = Device::flex();
    let encoder = TextEncoder::load(
        &assets::minilm().expect("run scripts/fetch-assets.sh"),
        &device,
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    dataset(data.path());
    let out = tempfile::tempdir().unwrap();
    let cfg = config();
    let report = prepare::prepare(data.path(), out.path(), &cfg, &encoder, &|_, _| {}).unwrap();
    let m = &report.manifest;
    // Windows: a 5 s -> [0, 4) + 1 s tail dropped = 1; b 12 s -> 3; c 3 s -> 1; d 4 s -> 1.
    assert_eq!(m.windows, 6, "{m:#?}");
    assert_eq!(m.shards.len(), 3); // 6 usable-or-not records in train/test, 2 per shard
    let reasons: Vec<String> = m.skipped.iter().map(|(w, r)| format!("{w}: {r}")).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("broken.wav") && r.contains("not a recognised")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("quiet.wav") && r.contains("silent")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("nocap.wav") && r.contains("missing caption")),
        "{reasons:?}"
    );
    assert_eq!(reasons.len(), 3);
    assert_eq!(m.mel_mean.len(), 80);
    assert!(m.mel_std.iter().all(|&s| s > 0.0));

    // Shard contents have the documented shapes.
    let frames = cfg.window_frames();
    let mut total = 0;
    for (name, bytes) in shard_bytes(out.path()) {
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mel = st.tensor("mel").unwrap();
        let n = mel.shape()[0];
        assert_eq!(mel.shape(), &[n, 80, frames], "{name}");
        let tokens = st.tensor("text_tokens").unwrap();
        assert_eq!(tokens.shape()[2], 384);
        assert_eq!(
            st.tensor("text_mask").unwrap().shape()[..2],
            tokens.shape()[..2]
        );
        assert_eq!(st.tensor("seconds_start").unwrap().shape(), &[n]);
        total += n;
    }
    assert_eq!(total, 6);

    // A second run elsewhere gives the same bytes; a rerun in place keeps every shard.
    let out2 = tempfile::tempdir().unwrap();
    prepare::prepare(data.path(), out2.path(), &cfg, &encoder, &|_, _| {}).unwrap();
    assert!(
        shard_bytes(out.path()) == shard_bytes(out2.path()),
        "shards differ between runs"
    );
    let again = prepare::prepare(data.path(), out.path(), &cfg, &encoder, &|_, _| {}).unwrap();
    assert_eq!((again.shards_written, again.shards_kept), (0, 3));

    // An interrupted run (summary of shard 1 missing) redoes just that shard, identically.
    let before = shard_bytes(out.path());
    std::fs::remove_file(out.path().join("shard-00001.json")).unwrap();
    let resumed = prepare::prepare(data.path(), out.path(), &cfg, &encoder, &|_, _| {}).unwrap();
    assert_eq!(resumed.shards_written, 1);
    assert!(shard_bytes(out.path()) == before, "resumed shard differs");

    // Other options in the same directory are refused.
    let other = PrepareConfig {
        window_seconds: 5.0,
        ..cfg
    };
    let err = prepare::prepare(data.path(), out.path(), &other, &encoder, &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("other options"), "{err}");
}

#[test]
fn loader_serves_every_window_once_in_a_seeded_order_with_bounded_memory() {
    use musicdiff_dataset::{Loader, Split};
    let encoder = TextEncoder::load(
        &assets::minilm().expect("run scripts/fetch-assets.sh"),
        &Device::flex(),
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    dataset(data.path());
    let out = tempfile::tempdir().unwrap();
    prepare::prepare(data.path(), out.path(), &config(), &encoder, &|_, _| {}).unwrap();

    let order = |seed: u64, epoch: u64| -> (Vec<String>, Vec<usize>, usize) {
        let loader = Loader::open(out.path(), Split::Train, 2, seed)
            .unwrap()
            .with_resident_shards(1);
        let mut it = loader.epoch(epoch);
        let mut captions = Vec::new();
        let mut sizes = Vec::new();
        for b in it.by_ref() {
            let b = b.unwrap();
            assert_eq!(b.mel.len(), b.size * 80 * b.frames);
            assert_eq!(b.tokens.len(), b.size * b.max_tokens * 384);
            assert_eq!(b.token_mask.len(), b.size * b.max_tokens);
            assert_eq!(b.sentence.len(), b.size * 384);
            sizes.push(b.size);
            for (i, c) in b.captions.iter().enumerate() {
                let start = b.seconds_start[i];
                captions.push(format!("{c}@{start}"));
            }
        }
        (captions, sizes, it.max_resident())
    };
    let (a, sizes, resident) = order(5, 0);
    // Train windows: a (1), b (3), c (1); the test clip d is not served.
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "a high tone@0",
            "a low tone@0",
            "a middle tone held for a long time@0",
            "a middle tone held for a long time@4",
            "a middle tone held for a long time@8",
        ]
    );
    assert_eq!(sizes.iter().sum::<usize>(), 5);
    assert!(sizes.iter().all(|&s| s <= 2));
    // One shard resident at a time: at most that shard's windows (2 records, <= 4 windows).
    assert!(resident <= 4, "{resident} windows resident");
    assert_eq!(order(5, 0).0, a, "same seed and epoch, same order");
    let differs = (1..6).any(|e| order(5, e).0 != a) && (6..12).any(|s| order(s, 0).0 != a);
    assert!(differs, "epochs and seeds should reorder");

    let test = Loader::open(out.path(), Split::Test, 8, 0).unwrap();
    let served: Vec<String> = test.epoch(0).flat_map(|b| b.unwrap().captions).collect();
    assert_eq!(served, ["held-out tone"]);

    // Regression: with one shard resident, shards without a window of the split (here every
    // shard but the test clip's) used to end the epoch before the split's windows were served.
    for seed in 0..6 {
        let test = Loader::open(out.path(), Split::Test, 1, seed)
            .unwrap()
            .with_resident_shards(1);
        let served: Vec<String> = test.epoch(0).flat_map(|b| b.unwrap().captions).collect();
        assert_eq!(served, ["held-out tone"], "seed {seed}");
    }

    // Genre and artist fields travel with the batch.
    let loader = Loader::open(out.path(), Split::Train, 8, 0).unwrap();
    let b = loader.epoch(0).next().unwrap().unwrap();
    for (caption, genre) in b.captions.iter().zip(&b.genres) {
        let want = (caption == "a low tone").then(|| "test".to_string());
        assert_eq!(genre, &want, "{caption}");
    }
    assert!(b.artists.iter().all(Option::is_none));
}

fn encoder() -> TextEncoder {
    TextEncoder::load(
        &assets::minilm().expect("run scripts/fetch-assets.sh"),
        &Device::flex(),
    )
    .unwrap()
}

#[test]
fn prepare_refuses_a_directory_prepared_from_another_dataset() {
    let encoder = encoder();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    dataset(a.path());
    dataset(b.path());
    std::fs::write(
        b.path().join("test/metadata.csv"),
        "file_name,caption\nd.wav,another dataset's tone\n",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let cfg = config();
    prepare::prepare(a.path(), out.path(), &cfg, &encoder, &|_, _| {}).unwrap();
    let before = shard_bytes(out.path());
    // Used to print "0 written, 3 kept" and keep A's shards under B's manifest.
    let err = prepare::prepare(b.path(), out.path(), &cfg, &encoder, &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("another dataset") && err.contains(&out.path().display().to_string()),
        "{err}"
    );
    assert!(
        shard_bytes(out.path()) == before,
        "a refused run changed shards"
    );
    // The same dataset through another spelling of its path is the same source.
    let again = a.path().join("train/..");
    let r = prepare::prepare(&again, out.path(), &cfg, &encoder, &|_, _| {}).unwrap();
    assert_eq!((r.shards_written, r.shards_kept), (0, 3));
}

#[test]
fn prepare_redoes_shards_whose_source_changed_or_whose_file_is_damaged() {
    let encoder = encoder();
    let data = tempfile::tempdir().unwrap();
    dataset(data.path());
    let out = tempfile::tempdir().unwrap();
    let cfg = config();
    let run = || prepare::prepare(data.path(), out.path(), &cfg, &encoder, &|_, _| {}).unwrap();
    run();
    let original = shard_bytes(out.path());

    // Records in order d (test), a, b, broken, quiet, c: shards [d, a], [b, broken],
    // [quiet, c]. An edited caption of c redoes the last shard only.
    let meta = data.path().join("train/metadata.jsonl");
    let text = std::fs::read_to_string(&meta).unwrap();
    std::fs::write(&meta, text.replace("a high tone", "a shrill tone")).unwrap();
    let r = run();
    assert_eq!((r.shards_written, r.shards_kept), (1, 2), "{:?}", r.notes);
    assert_eq!(r.notes.len(), 1);
    assert!(
        r.notes[0].contains("shard-00002.safetensors") && r.notes[0].contains("source changed"),
        "{:?}",
        r.notes
    );
    let captions = String::from_utf8_lossy(
        &std::fs::read(out.path().join("shard-00002.safetensors")).unwrap(),
    )
    .into_owned();
    assert!(captions.contains("a shrill tone"), "stale shard kept");
    std::fs::write(&meta, text).unwrap();
    run();
    assert!(shard_bytes(out.path()) == original);

    // A truncated shard, and one with a flipped byte, are redone, identically.
    let shard1 = out.path().join("shard-00001.safetensors");
    let bytes = std::fs::read(&shard1).unwrap();
    std::fs::write(&shard1, &bytes[..bytes.len() / 2]).unwrap();
    let r = run();
    assert_eq!((r.shards_written, r.shards_kept), (1, 2), "{:?}", r.notes);
    assert!(
        r.notes[0].contains("shard-00001.safetensors is damaged"),
        "{:?}",
        r.notes
    );
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    std::fs::write(&shard1, &flipped).unwrap();
    let r = run();
    assert_eq!((r.shards_written, r.shards_kept), (1, 2), "{:?}", r.notes);
    assert!(r.notes[0].contains("SHA-256"), "{:?}", r.notes);
    assert!(shard_bytes(out.path()) == original, "redone shards differ");

    // A dataset with fewer records now: the shards past its end are removed.
    std::fs::write(
        &meta,
        r#"{"file_name": "a.wav", "caption": "a low tone", "genre": "test"}"#,
    )
    .unwrap();
    let r = run();
    assert_eq!(r.manifest.shards.len(), 1);
    assert!(!out.path().join("shard-00001.safetensors").exists());
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("shard-00002.safetensors) removed")),
        "{:?}",
        r.notes
    );
}

#[cfg(unix)]
#[test]
fn symlink_loops_in_a_dataset_do_not_multiply_windows() {
    let encoder = encoder();
    let data = tempfile::tempdir().unwrap();
    dataset(data.path());
    std::os::unix::fs::symlink(".", data.path().join("train/loop")).unwrap();
    std::os::unix::fs::symlink("../train", data.path().join("test/up")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = prepare::prepare(data.path(), out.path(), &config(), &encoder, &|_, _| {}).unwrap();
    // As without the links: 6 windows; the links are reported, not followed.
    assert_eq!(r.manifest.windows, 6);
    let skipped: Vec<String> = r
        .manifest
        .skipped
        .iter()
        .map(|(w, r)| format!("{w}: {r}"))
        .collect();
    assert!(
        skipped
            .iter()
            .any(|s| s.contains("train/loop") && s.contains("not followed")),
        "{skipped:?}"
    );
    assert!(
        skipped
            .iter()
            .any(|s| s.contains("test/up") && s.contains("not followed")),
        "{skipped:?}"
    );
}
