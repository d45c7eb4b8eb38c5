//! Validates the tempo and key estimators on a rendered corpus with known bpm and key
//! (`musicdiff corpus build`): reads `DIR/{train,test}/metadata.jsonl`, runs both estimators on
//! every clip and prints MIREX Acc1/Acc2 for tempo and the weighted score and exact accuracy
//! for key, for MMA grooves, folk tunes (major/minor and modal apart) and overall. Clips are
//! split in two halves by a hash of their file name: "dev" (where settings were chosen) and
//! "held-out" (reported separately, untouched by the choice). See `docs/estimators.md`.
//!
//! ```sh
//! cargo run --release -p musicdiff-dsp --example validate_estimators -- data/est-corpus
//! # also the settings compared (dev half) and one line per clip:
//! cargo run --release -p musicdiff-dsp --example validate_estimators -- data/est-corpus --variants --list
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use musicdiff_dsp::audio::load_mono;
use musicdiff_dsp::key::{
    ChromaCompression, Key, KeyOptions, KeyProfiles, chroma, key_from_chroma, mirex_key_score,
};
use musicdiff_dsp::tempo::{
    HOP, TempoOptions, onset_strength, tempo_accuracy, tempo_from_envelope,
};
use rayon::prelude::*;

const SR: u32 = 22050;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    Mma,
    Folk,
    FolkModal,
}

struct Clip {
    name: String,
    path: PathBuf,
    group: Group,
    bpm: f64,
    key: Option<Key>,
    key_text: String,
    dev: bool,
}

/// FNV-1a, so that the dev/held-out split depends on nothing but the file name.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

fn read_clips(dir: &Path) -> Vec<Clip> {
    let mut clips = Vec::new();
    for split in ["train", "test"] {
        let meta = dir.join(split).join("metadata.jsonl");
        let Ok(text) = std::fs::read_to_string(&meta) else {
            continue;
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).expect("metadata line is JSON");
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            let (name, source, key_text) = (s("file_name"), s("source"), s("key"));
            let lower = key_text.to_lowercase();
            let group = if source.starts_with("mma:") {
                Group::Mma
            } else if lower.ends_with("major") || lower.ends_with("minor") || lower.is_empty() {
                Group::Folk
            } else {
                Group::FolkModal
            };
            clips.push(Clip {
                path: dir.join(split).join(&name),
                dev: fnv(&name).is_multiple_of(2),
                name,
                group,
                bpm: v["bpm"].as_f64().unwrap_or(0.0),
                key: Key::parse(&key_text),
                key_text,
            });
        }
    }
    clips
}

/// Per clip: one tempo estimate per tempo variant, one key per key variant (None on error).
struct Result {
    tempo: Vec<Option<f64>>,
    key: Vec<Option<Key>>,
}

struct Variants {
    /// (label, options); options sharing `flux_lag` and `n_mels` share an envelope.
    tempo: Vec<(String, TempoOptions)>,
    /// (label, options); options differing only in `profiles` share a chroma.
    key: Vec<(String, KeyOptions)>,
}

fn variants(all: bool) -> Variants {
    let d = TempoOptions::default();
    let mut tempo = vec![("default".to_string(), d)];
    let dk = KeyOptions::default();
    let mut key = vec![("default".to_string(), dk)];
    if all {
        for (label, o) in [
            (
                "Fourier term off (ACF only)",
                TempoOptions {
                    dft_weight: 0.0,
                    ..d
                },
            ),
            (
                "ACF term off (Fourier only)",
                TempoOptions {
                    acf_weight: 0.0,
                    ..d
                },
            ),
            (
                "Fourier weight 1",
                TempoOptions {
                    dft_weight: 1.0,
                    ..d
                },
            ),
            (
                "Fourier weight 0.25",
                TempoOptions {
                    dft_weight: 0.25,
                    ..d
                },
            ),
            (
                "ACF weight 2",
                TempoOptions {
                    acf_weight: 2.0,
                    ..d
                },
            ),
            (
                "no first-stage prior",
                TempoOptions {
                    prior_octaves: f64::INFINITY,
                    ..d
                },
            ),
            (
                "first-stage prior 0.5 oct",
                TempoOptions {
                    prior_octaves: 0.5,
                    ..d
                },
            ),
            (
                "first-stage prior 1 oct",
                TempoOptions {
                    prior_octaves: 1.0,
                    ..d
                },
            ),
            (
                "first-stage prior 2 oct",
                TempoOptions {
                    prior_octaves: 2.0,
                    ..d
                },
            ),
            (
                "priors centred on 100 bpm",
                TempoOptions {
                    prior_bpm: 100.0,
                    ..d
                },
            ),
            (
                "no octave stage",
                TempoOptions {
                    octave_prior_octaves: None,
                    ..d
                },
            ),
            (
                "octave-stage prior 0.7 oct",
                TempoOptions {
                    octave_prior_octaves: Some(0.7),
                    ..d
                },
            ),
            (
                "octave-stage prior 1 oct",
                TempoOptions {
                    octave_prior_octaves: Some(1.0),
                    ..d
                },
            ),
            (
                "global mean instead of 1 s detrend",
                TempoOptions {
                    detrend_seconds: 0.0,
                    ..d
                },
            ),
            (
                "detrend 2 s",
                TempoOptions {
                    detrend_seconds: 2.0,
                    ..d
                },
            ),
            ("flux lag 1", TempoOptions { flux_lag: 1, ..d }),
            ("flux lag 4", TempoOptions { flux_lag: 4, ..d }),
            ("40 mels", TempoOptions { n_mels: 40, ..d }),
            (
                "first version (ACF x Fourier, prior 1 oct, one stage, global mean)",
                TempoOptions {
                    dft_weight: 1.0,
                    prior_octaves: 1.0,
                    octave_prior_octaves: None,
                    detrend_seconds: 0.0,
                    ..d
                },
            ),
        ] {
            tempo.push((label.to_string(), o));
        }
        for compression in [
            ChromaCompression::Energy,
            ChromaCompression::Magnitude,
            ChromaCompression::Log,
        ] {
            for normalise_frames in [false, true] {
                for fmin in [27.5, 55.0] {
                    for profiles in [
                        KeyProfiles::KrumhanslKessler,
                        KeyProfiles::Temperley,
                        KeyProfiles::TemperleyKostkaPayne,
                        KeyProfiles::BellmanBudge,
                        KeyProfiles::Sapp,
                    ] {
                        let o = KeyOptions {
                            profiles,
                            compression,
                            normalise_frames,
                            fmin,
                            ..dk
                        };
                        if o != dk {
                            key.push((
                                format!(
                                    "{profiles:?} {compression:?} {} fmin {fmin}",
                                    if normalise_frames {
                                        "frame-norm"
                                    } else {
                                        "summed"
                                    }
                                ),
                                o,
                            ));
                        }
                    }
                }
            }
        }
    }
    Variants { tempo, key }
}

fn analyse(clip: &Clip, v: &Variants) -> Result {
    let audio = match load_mono(&clip.path, SR) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{}: {e}", clip.name);
            return Result {
                tempo: vec![None; v.tempo.len()],
                key: vec![None; v.key.len()],
            };
        }
    };
    let mut envelopes: BTreeMap<(usize, usize), Option<Vec<f64>>> = BTreeMap::new();
    let tempo = v
        .tempo
        .iter()
        .map(|(_, o)| {
            let env = envelopes
                .entry((o.flux_lag, o.n_mels))
                .or_insert_with(|| onset_strength(&audio, o.n_mels, o.flux_lag).ok());
            let env = env.as_ref()?;
            tempo_from_envelope(env, SR as f64 / HOP as f64, o)
                .ok()
                .map(|t| t.bpm)
        })
        .collect();
    let mut chromas: Vec<(KeyOptions, Option<[f64; 12]>)> = Vec::new();
    let key = v
        .key
        .iter()
        .map(|(_, o)| {
            let shared = KeyOptions {
                profiles: KeyProfiles::default(),
                ..*o
            };
            let c = match chromas.iter().find(|(k, _)| *k == shared) {
                Some((_, c)) => *c,
                None => {
                    let c = chroma(&audio, o).ok();
                    chromas.push((shared, c));
                    c
                }
            };
            key_from_chroma(&c?, o.profiles).ok().map(|k| k.key)
        })
        .collect();
    Result { tempo, key }
}

#[derive(Default, Clone, Copy)]
struct Tally {
    n: usize,
    acc1: usize,
    acc2: usize,
    tempo_failed: usize,
    n_key: usize,
    mirex: f64,
    exact: usize,
    key_failed: usize,
}

fn tally(clips: &[&Clip], results: &[&Result], tv: usize, kv: usize) -> Tally {
    let mut t = Tally::default();
    for (c, r) in clips.iter().zip(results) {
        t.n += 1;
        match r.tempo[tv] {
            Some(bpm) => {
                let (a1, a2) = tempo_accuracy(bpm, c.bpm);
                t.acc1 += a1 as usize;
                t.acc2 += a2 as usize;
            }
            None => t.tempo_failed += 1,
        }
        if let Some(truth) = c.key {
            t.n_key += 1;
            match r.key[kv] {
                Some(k) => {
                    let s = mirex_key_score(k, truth);
                    t.mirex += s;
                    t.exact += (s == 1.0) as usize;
                }
                None => t.key_failed += 1,
            }
        }
    }
    t
}

fn pct(a: usize, n: usize) -> String {
    if n == 0 {
        "-".into()
    } else {
        format!("{:.1}", 100.0 * a as f64 / n as f64)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(
        args.iter()
            .find(|a| !a.starts_with("--"))
            .expect("usage: validate_estimators CORPUS_DIR [--variants] [--list]"),
    );
    let all = args.iter().any(|a| a == "--variants");
    let list = args.iter().any(|a| a == "--list");
    let clips = read_clips(&dir);
    assert!(
        !clips.is_empty(),
        "no metadata.jsonl under {}",
        dir.display()
    );
    let v = variants(all);
    let start = std::time::Instant::now();
    let results: Vec<Result> = clips.par_iter().map(|c| analyse(c, &v)).collect();
    eprintln!(
        "{} clips analysed in {:.1} s",
        clips.len(),
        start.elapsed().as_secs_f64()
    );
    let unparsed: Vec<&str> = clips
        .iter()
        .filter(|c| c.key.is_none())
        .map(|c| c.key_text.as_str())
        .collect();
    if !unparsed.is_empty() {
        println!("key strings not parsed (left out of key scores): {unparsed:?}\n");
    }

    type Filter = fn(&Clip) -> bool;
    let groups: [(&str, Filter); 5] = [
        ("MMA grooves", |c| c.group == Group::Mma),
        ("folk, major/minor", |c| c.group == Group::Folk),
        ("folk, modal", |c| c.group == Group::FolkModal),
        ("folk, all", |c| c.group != Group::Mma),
        ("all", |_| true),
    ];
    let halves: [(&str, Filter); 3] = [
        ("dev", |c| c.dev),
        ("held-out", |c| !c.dev),
        ("all", |_| true),
    ];
    let select = |f: &dyn Fn(&Clip) -> bool| -> (Vec<&Clip>, Vec<&Result>) {
        clips.iter().zip(&results).filter(|(c, _)| f(c)).unzip()
    };

    if all {
        println!("## Tempo variants (dev half): Acc1 / Acc2 %\n");
        println!("| variant | MMA | folk | all |\n|---|---|---|---|");
        for (i, (label, _)) in v.tempo.iter().enumerate() {
            let cells: Vec<String> = [0, 3, 4]
                .iter()
                .map(|&g| {
                    let (c, r) = select(&|c: &Clip| c.dev && groups[g].1(c));
                    let t = tally(&c, &r, i, 0);
                    format!("{} / {}", pct(t.acc1, t.n), pct(t.acc2, t.n))
                })
                .collect();
            println!("| {label} | {} |", cells.join(" | "));
        }
        println!("\n## Key variants (dev half): MIREX score / exact %\n");
        println!("| variant | MMA | folk major/minor | folk modal | all |\n|---|---|---|---|---|");
        for (i, (label, _)) in v.key.iter().enumerate() {
            let cells: Vec<String> = [0, 1, 2, 4]
                .iter()
                .map(|&g| {
                    let (c, r) = select(&|c: &Clip| c.dev && groups[g].1(c));
                    let t = tally(&c, &r, 0, i);
                    format!(
                        "{:.3} / {}",
                        t.mirex / t.n_key.max(1) as f64,
                        pct(t.exact, t.n_key)
                    )
                })
                .collect();
            println!("| {label} | {} |", cells.join(" | "));
        }
        println!();
    }

    println!("## Default estimators\n");
    println!(
        "| clips | half | n | tempo Acc1 % | tempo Acc2 % | tempo errors | n with key | MIREX key score | exact key % | key errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (gname, g) in &groups {
        for (hname, h) in &halves {
            let (c, r) = select(&|c: &Clip| g(c) && h(c));
            let t = tally(&c, &r, 0, 0);
            println!(
                "| {gname} | {hname} | {} | {} | {} | {} | {} | {:.3} | {} | {} |",
                t.n,
                pct(t.acc1, t.n),
                pct(t.acc2, t.n),
                t.tempo_failed,
                t.n_key,
                t.mirex / t.n_key.max(1) as f64,
                pct(t.exact, t.n_key),
                t.key_failed
            );
        }
    }
    if list {
        println!("\n## Per clip (default estimators)\n");
        println!(
            "| clip | truth bpm | est bpm | truth key | est key | mirex |\n|---|---|---|---|---|---|"
        );
        for (c, r) in clips.iter().zip(&results) {
            let est_key = r.key[0];
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                c.name,
                c.bpm,
                r.tempo[0].map_or("error".into(), |b| format!("{b:.1}")),
                c.key_text,
                est_key.map_or("error".into(), |k| k.to_string()),
                match (est_key, c.key) {
                    (Some(e), Some(t)) => format!("{:.1}", mirex_key_score(e, t)),
                    _ => "-".into(),
                }
            );
        }
    }
}
