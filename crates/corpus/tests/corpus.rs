//! A tiny corpus build end to end (TimGM6mb, MMA): audio and metadata on disk, captions that
//! state what the MIDI holds, whole styles held out for testing, and resumption that keeps
//! finished clips byte for byte. Needs `scripts/fetch-assets.sh --minimal`.

use std::collections::HashSet;
use std::path::Path;

use musicdiff_common::assets;
use musicdiff_corpus::corpus::{self, ClipMeta, CorpusConfig};
use musicdiff_dsp::audio::decode_file;

fn config(out: &Path) -> CorpusConfig {
    CorpusConfig {
        out: out.to_path_buf(),
        hours: 0.04,
        clip_seconds: 8.0,
        soundfonts: vec![
            assets::soundfont("TimGM6mb.sf2").expect("run scripts/fetch-assets.sh --minimal"),
        ],
        seed: 11,
        sample_rate: 22050,
        test_fraction: 0.2,
        only_split: None,
        remap_probability: 0.3,
    }
}

fn sources() -> corpus::Sources {
    let hint = "run scripts/fetch-assets.sh --minimal";
    corpus::Sources {
        mma_home: assets::mma_home().expect(hint),
        music21: Some((
            assets::music21_corpus().expect(hint),
            assets::abc2midi().expect(hint),
        )),
    }
}

fn read_meta(path: &Path) -> Vec<ClipMeta> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn tiny_corpus_builds_resumes_and_holds_out_styles() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mma = sources();
    let report = corpus::build(&cfg, &mma, &|_, _| {}).unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.train_clips + report.test_clips, cfg.n_clips());
    assert_eq!(report.rendered, cfg.n_clips());

    let train = read_meta(&dir.path().join("train/metadata.jsonl"));
    let test = read_meta(&dir.path().join("test/metadata.jsonl"));
    assert_eq!(train.len() + test.len(), cfg.n_clips());
    for (split, metas) in [("train", &train), ("test", &test)] {
        for m in metas.iter() {
            let audio = decode_file(&dir.path().join(split).join(&m.file_name)).unwrap();
            assert_eq!(audio.sample_rate, 22050);
            assert!((audio.seconds() - m.duration).abs() < 1e-3);
            assert!(m.duration > 4.0 && m.duration < 20.0, "{}", m.duration);
            let peak = audio.channels[0].iter().fold(0.0f32, |a, v| a.max(v.abs()));
            assert!(peak > 0.05 && peak <= 0.99, "{}: peak {peak}", m.file_name);
            assert!(!m.instruments.is_empty(), "{}", m.file_name);
            assert!(m.captions.contains(&m.caption));
            // At least one phrasing names the first instrument the MIDI plays.
            assert!(
                m.captions
                    .iter()
                    .any(|c| c.to_lowercase().contains(&m.instruments[0])),
                "{:?} vs {:?}",
                m.captions,
                m.instruments
            );
            assert!(
                m.caption.contains(&m.genre)
                    || m.caption.to_lowercase().contains(&m.genre.to_lowercase())
            );
            assert!(m.source.starts_with("mma:") || m.source.starts_with("music21:"));
        }
    }
    // Both sources are present.
    let all: Vec<&ClipMeta> = train.iter().chain(test.iter()).collect();
    assert!(all.iter().any(|m| m.source.starts_with("mma:")));
    assert!(all.iter().any(|m| m.source.starts_with("music21:")));
    // Styles (and tunes) never straddle the split.
    let style = |m: &ClipMeta| m.source.split('/').next().unwrap().to_string();
    let train_styles: HashSet<String> = train.iter().map(style).collect();
    assert!(test.iter().all(|m| !train_styles.contains(&style(m))));

    // A second run keeps every clip and rewrites identical metadata.
    let before = std::fs::read(dir.path().join("train/metadata.jsonl")).unwrap();
    let first_wav = dir.path().join("train").join(&train[0].file_name);
    let wav_before = std::fs::read(&first_wav).unwrap();
    let again = corpus::build(&cfg, &mma, &|_, _| {}).unwrap();
    assert_eq!(again.resumed, cfg.n_clips());
    assert_eq!(again.rendered, 0);
    let same = |path: &Path, bytes: &[u8]| std::fs::read(path).unwrap() == bytes;
    assert!(
        same(&dir.path().join("train/metadata.jsonl"), &before),
        "metadata changed:\n{}\nvs\n{}",
        String::from_utf8_lossy(&before),
        std::fs::read_to_string(dir.path().join("train/metadata.jsonl")).unwrap()
    );
    assert!(same(&first_wav, &wav_before), "resumed audio changed");

    // An interrupted build (a clip's sidecar missing) renders just that clip, identically.
    std::fs::remove_file(first_wav.with_extension("json")).unwrap();
    let resumed = corpus::build(&cfg, &mma, &|_, _| {}).unwrap();
    assert_eq!(resumed.rendered, 1);
    assert!(same(&first_wav, &wav_before), "re-rendered audio differs");
    assert!(
        same(&dir.path().join("train/metadata.jsonl"), &before),
        "re-rendered metadata differs"
    );
}

#[test]
fn bad_options_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.hours = 0.0;
    let mma = sources();
    let err = corpus::build(&cfg, &mma, &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("hours"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn only_split_renders_the_same_test_clips_and_leaves_train_alone() {
    let full = tempfile::tempdir().unwrap();
    let cfg = config(full.path());
    corpus::build(&cfg, &sources(), &|_, _| {}).unwrap();
    let part = tempfile::tempdir().unwrap();
    let only = CorpusConfig {
        out: part.path().to_path_buf(),
        only_split: Some("test".into()),
        ..config(part.path())
    };
    let report = corpus::build(&only, &sources(), &|_, _| {}).unwrap();
    assert_eq!(report.train_clips, 0);
    let test = read_meta(&part.path().join("test/metadata.jsonl"));
    assert_eq!(test, read_meta(&full.path().join("test/metadata.jsonl")));
    assert!(!test.is_empty());
    for m in &test {
        assert_eq!(
            std::fs::read(part.path().join("test").join(&m.file_name)).unwrap(),
            std::fs::read(full.path().join("test").join(&m.file_name)).unwrap(),
            "{}",
            m.file_name
        );
    }
    assert!(!part.path().join("train/metadata.jsonl").exists());
    assert_eq!(
        std::fs::read_dir(part.path().join("train"))
            .unwrap()
            .count(),
        0
    );
    let bad = CorpusConfig {
        only_split: Some("dev".into()),
        ..config(part.path())
    };
    assert!(corpus::build(&bad, &sources(), &|_, _| {}).is_err());
}
