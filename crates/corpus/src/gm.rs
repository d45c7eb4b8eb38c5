//! General MIDI level 1 program names (MIDI Manufacturers Association, "General MIDI System
//! Level 1", 1991), lower-cased for captions, and the 16 families of eight programs that
//! timbre remapping stays within.

/// Program names indexed by program number 0..=127.
pub const PROGRAMS: [&str; 128] = [
    "acoustic grand piano",
    "bright acoustic piano",
    "electric grand piano",
    "honky-tonk piano",
    "electric piano",
    "chorused electric piano",
    "harpsichord",
    "clavinet",
    "celesta",
    "glockenspiel",
    "music box",
    "vibraphone",
    "marimba",
    "xylophone",
    "tubular bells",
    "dulcimer",
    "drawbar organ",
    "percussive organ",
    "rock organ",
    "church organ",
    "reed organ",
    "accordion",
    "harmonica",
    "tango accordion",
    "nylon string guitar",
    "steel string guitar",
    "jazz electric guitar",
    "clean electric guitar",
    "muted electric guitar",
    "overdriven guitar",
    "distortion guitar",
    "guitar harmonics",
    "acoustic bass",
    "fingered electric bass",
    "picked electric bass",
    "fretless bass",
    "slap bass",
    "slap bass",
    "synth bass",
    "synth bass",
    "violin",
    "viola",
    "cello",
    "contrabass",
    "tremolo strings",
    "pizzicato strings",
    "orchestral harp",
    "timpani",
    "string ensemble",
    "slow string ensemble",
    "synth strings",
    "synth strings",
    "choir aahs",
    "voice oohs",
    "synth voice",
    "orchestra hit",
    "trumpet",
    "trombone",
    "tuba",
    "muted trumpet",
    "french horn",
    "brass section",
    "synth brass",
    "synth brass",
    "soprano sax",
    "alto sax",
    "tenor sax",
    "baritone sax",
    "oboe",
    "english horn",
    "bassoon",
    "clarinet",
    "piccolo",
    "flute",
    "recorder",
    "pan flute",
    "blown bottle",
    "shakuhachi",
    "whistle",
    "ocarina",
    "square lead synth",
    "sawtooth lead synth",
    "calliope lead",
    "chiff lead",
    "charang lead",
    "voice lead",
    "fifths lead",
    "bass and lead synth",
    "new age pad",
    "warm pad",
    "polysynth pad",
    "choir pad",
    "bowed pad",
    "metallic pad",
    "halo pad",
    "sweep pad",
    "rain effect",
    "soundtrack effect",
    "crystal effect",
    "atmosphere effect",
    "brightness effect",
    "goblins effect",
    "echoes effect",
    "sci-fi effect",
    "sitar",
    "banjo",
    "shamisen",
    "koto",
    "kalimba",
    "bagpipe",
    "fiddle",
    "shanai",
    "tinkle bell",
    "agogo",
    "steel drums",
    "woodblock",
    "taiko drum",
    "melodic tom",
    "synth drum",
    "reverse cymbal",
    "guitar fret noise",
    "breath noise",
    "seashore",
    "bird tweet",
    "telephone ring",
    "helicopter",
    "applause",
    "gunshot",
];

/// The caption name of a program.
pub fn program_name(program: u8) -> &'static str {
    PROGRAMS[(program & 0x7f) as usize]
}

/// Programs in the same family of eight (pianos, organs, guitars, basses, ...).
pub fn family(program: u8) -> std::ops::Range<u8> {
    let start = (program & 0x7f) / 8 * 8;
    start..start + 8
}

/// Families whose members sound alike enough to swap for timbre variety without making a
/// caption's genre wrong (sound effects and percussive oddities are left alone).
pub fn remappable(program: u8) -> bool {
    (program & 0x7f) < 96
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_families() {
        assert_eq!(program_name(0), "acoustic grand piano");
        assert_eq!(program_name(24), "nylon string guitar");
        assert_eq!(program_name(127), "gunshot");
        assert_eq!(family(26), 24..32);
        assert!(remappable(40) && !remappable(120));
    }
}
