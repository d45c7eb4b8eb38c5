//! The metrics of the suite, per system, from the cached analyses (definitions in
//! `docs/evaluation.md`):
//! 1. FAD and KID between the system's musicnn patch embeddings and the reference clips';
//! 2. paired KL between each reference clip's MTT tag distribution and its system clip's;
//! 3. tag adherence: per MTT tag that prompts name, the ROC AUC of the tag's probability between
//!    prompts that name it and prompts that do not, averaged over tags;
//! 4. tempo Acc1/Acc2 and MIREX key score against the tempo and key each prompt states;
//! 5. seams of edits, as ratios to the same distance in the untouched reference;
//! 6. the conversion error of the oracle, and the held-out diffusion loss from training.

use std::collections::BTreeMap;

use musicdiff_dsp::key::{Key, mirex_key_score};
use musicdiff_dsp::tempo::tempo_accuracy;
use musicdiff_judge::MTT_TAGS;

use crate::error::Result;
use crate::prompt;
use crate::report::{Report, Row, TagRow};
use crate::stats::{
    self, bootstrap_clips, distance_with_interval, frechet_distance, kernel_inception_distance,
};
use crate::suite::{ClipAnalysis, Event, Options, Results, System};

/// A tag counts towards adherence when at least this many prompts name it and this many do
/// not.
pub const MIN_TAG_PROMPTS: usize = 3;

/// Bootstrap seed of every interval (fixed, so that a report is reproducible).
const SEED: u64 = 0x5EED;

/// Steps 1-6 for every system.
pub fn compute(
    results: &Results,
    opts: &Options,
    wall_seconds: f64,
    events: &mut dyn FnMut(Event),
) -> Result<Report> {
    let clips = &results.clips;
    let n = clips.len();
    let reference = &results
        .systems
        .iter()
        .find(|(s, _)| *s == System::Reference)
        .expect("the reference is always analysed")
        .1;
    let grouped = |a: &[ClipAnalysis]| -> Vec<Vec<Vec<f32>>> {
        a.iter().map(|c| c.embeddings.clone()).collect()
    };
    let reference_embeddings = grouped(reference);
    let bpms: Vec<Option<f64>> = clips
        .iter()
        .map(|c| prompt::stated_bpm(&c.caption))
        .collect();
    let keys: Vec<Option<Key>> = clips
        .iter()
        .map(|c| prompt::stated_key(&c.caption))
        .collect();
    let named: Vec<Vec<&str>> = clips
        .iter()
        .map(|c| prompt::named_tags(&c.caption))
        .collect();
    // Tags with enough prompts on both sides.
    let tags: Vec<(&str, usize)> = MTT_TAGS
        .iter()
        .enumerate()
        .filter_map(|(i, &t)| {
            let pos = named.iter().filter(|n| n.contains(&t)).count();
            (pos >= MIN_TAG_PROMPTS && n - pos >= MIN_TAG_PROMPTS).then_some((t, i))
        })
        .collect();

    events(Event::Stage {
        name: "metrics".into(),
        total: results.systems.len(),
    });
    let resamples = opts.resamples;
    let mut rows = Vec::new();
    let mut tag_rows: Vec<TagRow> = tags
        .iter()
        .map(|&(t, _)| TagRow {
            tag: t.to_string(),
            prompts: named.iter().filter(|n| n.contains(&t)).count(),
            auc: BTreeMap::new(),
        })
        .collect();
    for (system, analyses) in &results.systems {
        let is_reference = *system == System::Reference;
        // 1. FAD, KID.
        let (fad, kid) = if is_reference {
            (None, None)
        } else {
            let mine = grouped(analyses);
            let mut fad = distance_with_interval(frechet_distance, &mine, &reference_embeddings)?;
            // A distance is not negative, whatever the reflected interval says.
            fad.low = fad.low.max(0.0);
            (
                Some(fad),
                Some(distance_with_interval(
                    kernel_inception_distance,
                    &mine,
                    &reference_embeddings,
                )?),
            )
        };
        // 2. Paired KL.
        let kl = (!is_reference)
            .then(|| {
                let per_clip: Vec<f64> = (0..n)
                    .map(|i| stats::tag_kl(&reference[i].tags, &analyses[i].tags))
                    .collect();
                stats::mean_with_interval(&per_clip, resamples, SEED)
            })
            .flatten();
        // 3. Tag adherence.
        let auc_of = |pick: &[usize], tag: &str, index: usize| -> Option<f64> {
            let (mut pos, mut neg) = (Vec::new(), Vec::new());
            for &i in pick {
                let p = analyses[i].tags[index] as f64;
                if named[i].contains(&tag) {
                    pos.push(p)
                } else {
                    neg.push(p)
                }
            }
            stats::roc_auc(&pos, &neg)
        };
        let every_clip: Vec<usize> = (0..n).collect();
        for (row, &(tag, index)) in tag_rows.iter_mut().zip(&tags) {
            if let Some(a) = auc_of(&every_clip, tag, index) {
                row.auc.insert(system.name(), a);
            }
        }
        let adherence = bootstrap_clips(n, resamples, SEED, |pick| {
            let aucs: Vec<f64> = tags
                .iter()
                .filter_map(|&(t, i)| auc_of(pick, t, i))
                .collect();
            (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64)
        });
        // 4. Tempo and key against the prompt.
        let with_bpm: Vec<usize> = (0..n).filter(|&i| bpms[i].is_some()).collect();
        let tempo_hits: Vec<(f64, f64)> = with_bpm
            .iter()
            .map(|&i| match analyses[i].tempo {
                Some(est) => {
                    let (a1, a2) = tempo_accuracy(est, bpms[i].expect("filtered"));
                    (a1 as u8 as f64, a2 as u8 as f64)
                }
                None => (0.0, 0.0),
            })
            .collect();
        let acc1 = stats::mean_with_interval(
            &tempo_hits.iter().map(|h| h.0).collect::<Vec<_>>(),
            resamples,
            SEED,
        );
        let acc2 = stats::mean_with_interval(
            &tempo_hits.iter().map(|h| h.1).collect::<Vec<_>>(),
            resamples,
            SEED,
        );
        let key_scores: Vec<f64> = (0..n)
            .filter_map(|i| {
                let truth = keys[i]?;
                Some(
                    analyses[i]
                        .key
                        .as_deref()
                        .and_then(Key::parse)
                        .map_or(0.0, |est| mirex_key_score(est, truth)),
                )
            })
            .collect();
        let key = stats::mean_with_interval(&key_scores, resamples, SEED);
        // 5. Seams: mean distance across the edit's seams over the mean at the same places in
        // the untouched reference.
        let ratio =
            |pick: &[usize], f: &dyn Fn(&crate::suite::SeamMeasure) -> Option<(f64, f64)>| {
                let (mut a, mut b) = (0.0, 0.0);
                for &i in pick {
                    for s in &analyses[i].seams {
                        if let Some((x, y)) = f(s) {
                            a += x;
                            b += y;
                        }
                    }
                }
                (b > 0.0).then(|| a / b)
            };
        let has_seams = analyses.iter().any(|a| !a.seams.is_empty());
        let seam_statistics = has_seams
            .then(|| {
                bootstrap_clips(n, resamples, SEED, |pick| {
                    ratio(pick, &|s| Some((s.statistics?, s.statistics_reference?)))
                })
            })
            .flatten();
        let seam_embedding = has_seams
            .then(|| {
                bootstrap_clips(n, resamples, SEED, |pick| {
                    ratio(pick, &|s| Some((s.embedding, s.embedding_reference)))
                })
            })
            .flatten();
        rows.push(Row {
            system: system.name(),
            description: system.description().to_string(),
            clips: n,
            fad,
            kid,
            kl,
            tag_adherence: adherence,
            tempo_acc1: acc1,
            tempo_acc2: acc2,
            key_mirex: key,
            seam_statistics,
            seam_embedding,
        });
        events(Event::Step);
    }
    // 6. Conversion and held-out loss.
    let sc: Vec<f64> = results.conversion.iter().map(|c| c.0).collect();
    let lsd: Vec<f64> = results.conversion.iter().map(|c| c.1).collect();
    Ok(Report {
        settings: results.settings.clone(),
        model_dir: opts.model_dir.display().to_string(),
        reference_dir: opts.reference.display().to_string(),
        clips: results
            .clips
            .iter()
            .map(|c| (c.id.clone(), c.caption.clone()))
            .collect(),
        prompts_with_bpm: bpms.iter().filter(|b| b.is_some()).count(),
        prompts_with_key: keys.iter().filter(|k| k.is_some()).count(),
        rows,
        tags: tag_rows,
        conversion_sc: stats::mean_with_interval(&sc, resamples, SEED),
        conversion_lsd: stats::mean_with_interval(&lsd, resamples, SEED),
        heldout_loss: results.heldout_loss.clone(),
        heldout_step: results.heldout_step,
        overlap: results.overlap,
        warnings: results.warnings.clone(),
        notes: results.notes.clone(),
        wall_seconds,
    })
}
