//! Where the external assets live: `$MUSICDIFF_ASSETS`, else `assets/` in the current
//! directory, else `assets/` at the repository root this binary was built from. Every lookup
//! that fails says which script installs the asset.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// The assets directory in use, as an absolute path (it may not exist yet). Absolute,
/// because external tools run with other working directories.
pub fn assets_dir() -> PathBuf {
    let dir = if let Some(dir) = std::env::var_os("MUSICDIFF_ASSETS") {
        PathBuf::from(dir)
    } else if Path::new("assets").is_dir() {
        PathBuf::from("assets")
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets")
    };
    std::path::absolute(&dir).unwrap_or(dir)
}

fn require(what: &'static str, path: PathBuf) -> Result<PathBuf> {
    if path.exists() {
        Ok(path)
    } else {
        Err(DataError::MissingAsset { what, path })
    }
}

/// A SoundFont by file name (`TimGM6mb.sf2`, `FluidR3_GM.sf2`) or by path.
pub fn soundfont(name: &str) -> Result<PathBuf> {
    let p = Path::new(name);
    if p.components().count() > 1 || p.exists() {
        return require("SoundFont", p.to_path_buf());
    }
    require("SoundFont", assets_dir().join("soundfonts").join(name))
}

/// MMA's home directory (holding `mma.py` and `lib/`).
pub fn mma_home() -> Result<PathBuf> {
    let home = assets_dir().join("mma");
    require("MMA (Musical MIDI Accompaniment)", home.join("mma.py"))?;
    Ok(home)
}

/// The `abc2midi` executable.
pub fn abc2midi() -> Result<PathBuf> {
    require("abc2midi", assets_dir().join("abcmidi/abc2midi"))
}

/// The music21 corpus directory.
pub fn music21_corpus() -> Result<PathBuf> {
    require("the music21 corpus", assets_dir().join("music21/corpus"))
}

/// The all-MiniLM-L6-v2 model directory.
pub fn minilm() -> Result<PathBuf> {
    let dir = assets_dir().join("minilm");
    require("the all-MiniLM-L6-v2 model", dir.join("model.safetensors"))?;
    Ok(dir)
}
