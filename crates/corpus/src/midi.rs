//! MIDI analysis (midly), program remapping for timbre variety, and rendering to audio with a
//! SoundFont synthesiser (rustysynth, a Rust port of MeltySynth).

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use midly::{MetaMessage, MidiMessage, Smf, TrackEventKind};
use rustysynth::{MidiFile, MidiFileSequencer, SoundFont, Synthesizer, SynthesizerSettings};

use crate::error::{CorpusError, Result};
use crate::gm;
use musicdiff_common::rng::Rng;

/// What a MIDI file says about itself, for captions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MidiInfo {
    /// GM instrument names that play notes, in order of first use; "drums" for channel 10.
    pub instruments: Vec<String>,
    /// First tempo in beats per minute.
    pub bpm: Option<f64>,
    /// First time signature as (numerator, denominator).
    pub time_signature: Option<(u8, u8)>,
    /// First key signature, e.g. "A minor".
    pub key: Option<String>,
    /// Number of notes played.
    pub notes: usize,
}

const MAJOR_KEYS: [&str; 15] = [
    "C flat", "G flat", "D flat", "A flat", "E flat", "B flat", "F", "C", "G", "D", "A", "E", "B",
    "F sharp", "C sharp",
];
const MINOR_KEYS: [&str; 15] = [
    "A flat", "E flat", "B flat", "F", "C", "G", "D", "A", "E", "B", "F sharp", "C sharp",
    "G sharp", "D sharp", "A sharp",
];

/// Name of a key signature with `sharps` (negative: flats).
pub fn key_name(sharps: i8, minor: bool) -> String {
    let i = (sharps.clamp(-7, 7) + 7) as usize;
    if minor {
        format!("{} minor", MINOR_KEYS[i])
    } else {
        format!("{} major", MAJOR_KEYS[i])
    }
}

fn parse<'a>(bytes: &'a [u8], id: &str) -> Result<Smf<'a>> {
    Smf::parse(bytes).map_err(|e| CorpusError::Midi {
        source_id: id.to_string(),
        detail: e.to_string(),
    })
}

/// Reads instruments, tempo, meter and key from MIDI bytes.
pub fn analyze(bytes: &[u8], id: &str) -> Result<MidiInfo> {
    let smf = parse(bytes, id)?;
    let mut info = MidiInfo::default();
    let mut program = [0u8; 16];
    for track in &smf.tracks {
        for ev in track {
            match ev.kind {
                TrackEventKind::Midi { channel, message } => {
                    let ch = channel.as_int() as usize;
                    match message {
                        MidiMessage::ProgramChange { program: p } => program[ch] = p.as_int(),
                        MidiMessage::NoteOn { vel, .. } if vel.as_int() > 0 => {
                            info.notes += 1;
                            let name = if ch == 9 {
                                "drums"
                            } else {
                                gm::program_name(program[ch])
                            };
                            if !info.instruments.iter().any(|n| n == name) {
                                info.instruments.push(name.to_string());
                            }
                        }
                        _ => {}
                    }
                }
                TrackEventKind::Meta(MetaMessage::Tempo(t)) if info.bpm.is_none() => {
                    info.bpm = Some(60_000_000.0 / t.as_int().max(1) as f64);
                }
                TrackEventKind::Meta(MetaMessage::TimeSignature(n, d, _, _))
                    if info.time_signature.is_none() =>
                {
                    info.time_signature = Some((n, 1u8.checked_shl(d as u32).unwrap_or(4)));
                }
                TrackEventKind::Meta(MetaMessage::KeySignature(sharps, minor))
                    if info.key.is_none() =>
                {
                    info.key = Some(key_name(sharps, minor));
                }
                _ => {}
            }
        }
    }
    Ok(info)
}

/// Swaps each non-drum channel's programs, with probability `p` per channel, for another
/// program of the same GM family (one guitar for another, one organ for another), so that
/// renders vary in timbre while captions, built from the result, stay exact.
pub fn remap_programs(bytes: &[u8], id: &str, rng: &mut Rng, p: f64) -> Result<Vec<u8>> {
    let mut smf = parse(bytes, id)?;
    let mut chosen: BTreeMap<(u8, u8), u8> = BTreeMap::new();
    for track in &mut smf.tracks {
        for ev in track.iter_mut() {
            if let TrackEventKind::Midi {
                channel,
                message: MidiMessage::ProgramChange { program },
            } = &mut ev.kind
            {
                let (ch, old) = (channel.as_int(), program.as_int());
                if ch == 9 || !gm::remappable(old) {
                    continue;
                }
                let new = *chosen.entry((ch, old)).or_insert_with(|| {
                    if rng.chance(p) {
                        let fam = gm::family(old);
                        rng.range(fam.start as u64, fam.end as u64) as u8
                    } else {
                        old
                    }
                });
                *program = new.into();
            }
        }
    }
    let mut out = Vec::new();
    smf.write_std(&mut out).map_err(|e| CorpusError::Midi {
        source_id: id.to_string(),
        detail: e.to_string(),
    })?;
    Ok(out)
}

/// A loaded SoundFont and the rate to render at.
pub struct Renderer {
    soundfont: Arc<SoundFont>,
    sample_rate: u32,
    name: String,
}

impl Renderer {
    pub fn load(path: &Path, sample_rate: u32) -> Result<Self> {
        let mut file = std::fs::File::open(path).map_err(|e| CorpusError::io(path, e))?;
        let sf = SoundFont::new(&mut file).map_err(|e| CorpusError::SoundFont {
            path: path.to_path_buf(),
            detail: format!("{e:?}"),
        })?;
        Ok(Self {
            soundfont: Arc::new(sf),
            sample_rate,
            name: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        })
    }

    /// The SoundFont's file stem, recorded in the metadata.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renders MIDI bytes to mono audio: the whole file plus `tail` seconds of release,
    /// at most `max_seconds`.
    pub fn render(&self, bytes: &[u8], id: &str, tail: f64, max_seconds: f64) -> Result<Vec<f32>> {
        let midi = MidiFile::new(&mut Cursor::new(bytes)).map_err(|e| CorpusError::Midi {
            source_id: id.to_string(),
            detail: format!("{e:?}"),
        })?;
        let seconds = (midi.get_length() + tail).min(max_seconds);
        let n = (seconds * self.sample_rate as f64).round() as usize;
        let settings = SynthesizerSettings::new(self.sample_rate as i32);
        let synth =
            Synthesizer::new(&self.soundfont, &settings).map_err(|e| CorpusError::Midi {
                source_id: id.to_string(),
                detail: format!("synthesiser: {e:?}"),
            })?;
        let mut seq = MidiFileSequencer::new(synth);
        seq.play(&Arc::new(midi), false);
        let (mut left, mut right) = (vec![0.0f32; n], vec![0.0f32; n]);
        seq.render(&mut left, &mut right);
        Ok(left
            .iter()
            .zip(&right)
            .map(|(l, r)| 0.5 * (l + r))
            .collect())
    }
}

/// Scales `audio` to an RMS of `target_dbfs`, then lowers it if the peak would exceed
/// `peak_limit`. Silent input is left alone. Returns the gain applied.
pub fn normalise(audio: &mut [f32], target_dbfs: f64, peak_limit: f32) -> f32 {
    let rms =
        (audio.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / audio.len().max(1) as f64).sqrt();
    if rms < 1e-9 {
        return 1.0;
    }
    let mut gain = (10f64.powf(target_dbfs / 20.0) / rms) as f32;
    let peak = audio.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if peak * gain > peak_limit {
        gain = peak_limit / peak;
    }
    audio.iter_mut().for_each(|v| *v *= gain);
    gain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names() {
        assert_eq!(key_name(0, false), "C major");
        assert_eq!(key_name(0, true), "A minor");
        assert_eq!(key_name(-2, false), "B flat major");
        assert_eq!(key_name(3, true), "F sharp minor");
    }

    #[test]
    fn normalise_hits_the_target_or_the_peak_limit() {
        let mut x: Vec<f32> = (0..1000)
            .map(|i| ((i as f32) * 0.05).sin() * 0.01)
            .collect();
        normalise(&mut x, -20.0, 0.99);
        let rms = (x.iter().map(|v| v * v).sum::<f32>() / 1000.0).sqrt();
        assert!((20.0 * rms.log10() + 20.0).abs() < 0.01);
        let mut spike = vec![0.0f32; 1000];
        spike[10] = 0.5;
        normalise(&mut spike, -20.0, 0.99);
        assert!((spike[10] - 0.99).abs() < 1e-6);
    }
}
