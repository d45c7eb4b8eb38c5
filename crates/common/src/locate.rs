//! Where the program finds what is not compiled into it: the assets directory (SoundFonts,
//! MMA, abc2midi, the music21 corpus, the MiniLM encoder, the musicnn judge, installed by
//! `scripts/fetch-assets.sh`) and the bundled model directory. One order everywhere: the flag
//! when the user gave one; else the environment variable when it is set; else the directory
//! beside the running binary or in one of its ancestors (so `target/release/musicdiff` in a
//! checkout finds the checkout's), then in the working directory. A flag or variable is taken
//! at its word: it does not fall through to the other places. Nothing is looked up in the
//! source tree the binary was built from: a copied binary behaves as the same file anywhere.

use std::path::{Path, PathBuf};

use crate::error::NotFound;

/// The variable that names the assets directory.
pub const ASSETS_ENV: &str = "MUSICDIFF_ASSETS";
/// The variable that names the default model directory.
pub const MODEL_ENV: &str = "MUSICDIFF_MODEL";
/// The variable that names the default vocoder directory.
pub const VOCODER_ENV: &str = "MUSICDIFF_VOCODER";
/// Ancestors of the binary's directory searched (a test binary sits in `target/debug/deps`).
const EXE_ANCESTORS: usize = 4;

/// Every place `relative` is looked for, in order (see the module header).
pub fn candidates(flag: Option<&Path>, env: &str, relative: &str) -> Vec<PathBuf> {
    if let Some(p) = flag {
        return vec![absolute(p)];
    }
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        return vec![absolute(Path::new(&p))];
    }
    let mut out = Vec::new();
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.canonicalize().ok())
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        out.extend(
            exe_dir
                .ancestors()
                .take(EXE_ANCESTORS)
                .map(|d| d.join(relative)),
        );
    }
    let here = absolute(Path::new(relative));
    if !out.contains(&here) {
        out.push(here);
    }
    out
}

/// The first of [`candidates`] that is a directory; otherwise an error listing every place
/// looked at, ending with `hint`.
pub fn find_dir(
    what: &str,
    flag: Option<&Path>,
    env: &str,
    relative: &str,
    hint: &str,
) -> Result<PathBuf, NotFound> {
    let looked = candidates(flag, env, relative);
    looked
        .iter()
        .find(|p| p.is_dir())
        .cloned()
        .ok_or_else(|| NotFound {
            what: what.into(),
            looked,
            hint: hint.into(),
        })
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The assets installed by `scripts/fetch-assets.sh`.
pub mod assets {
    use super::*;

    const HINT: &str = "install the assets with scripts/fetch-assets.sh (or set MUSICDIFF_ASSETS)";

    /// The assets directory in use, absolute (external tools run with other working
    /// directories).
    pub fn dir() -> Result<PathBuf, NotFound> {
        find_dir("the assets directory", None, ASSETS_ENV, "assets", HINT)
    }

    fn require(what: &str, path: PathBuf) -> Result<PathBuf, NotFound> {
        if path.exists() {
            Ok(path)
        } else {
            Err(NotFound {
                what: what.into(),
                looked: vec![path],
                hint: HINT.into(),
            })
        }
    }

    /// A SoundFont by file name (`TimGM6mb.sf2`, `FluidR3_GM.sf2`) in the assets, or by path.
    pub fn soundfont(name: &str) -> Result<PathBuf, NotFound> {
        let p = Path::new(name);
        if p.components().count() > 1 || p.exists() {
            return require("SoundFont", p.to_path_buf());
        }
        require("SoundFont", dir()?.join("soundfonts").join(name))
    }

    /// MMA's home directory (holding `mma.py` and `lib/`).
    pub fn mma_home() -> Result<PathBuf, NotFound> {
        let home = dir()?.join("mma");
        require("MMA (Musical MIDI Accompaniment)", home.join("mma.py"))?;
        Ok(home)
    }

    /// The `abc2midi` executable.
    pub fn abc2midi() -> Result<PathBuf, NotFound> {
        require("abc2midi", dir()?.join("abcmidi/abc2midi"))
    }

    /// The music21 corpus directory.
    pub fn music21_corpus() -> Result<PathBuf, NotFound> {
        require("the music21 corpus", dir()?.join("music21/corpus"))
    }

    /// The all-MiniLM-L6-v2 model directory.
    pub fn minilm() -> Result<PathBuf, NotFound> {
        let d = dir()?.join("minilm");
        require("the all-MiniLM-L6-v2 model", d.join("model.safetensors"))?;
        Ok(d)
    }

    /// The MTT musicnn weights directory (holding `mtt_musicnn.safetensors`).
    pub fn musicnn() -> Result<PathBuf, NotFound> {
        let d = dir()?.join("musicnn");
        require("the MTT musicnn weights", d.join("mtt_musicnn.safetensors"))?;
        Ok(d)
    }
}

/// The model directory to use: `flag`, else `$MUSICDIFF_MODEL`, else `models/default` beside
/// the binary (or an ancestor) or in the working directory.
pub fn model_dir(flag: Option<&Path>) -> Result<PathBuf, NotFound> {
    find_dir(
        "model directory",
        flag,
        MODEL_ENV,
        "models/default",
        "pass --model DIR (a directory made by `musicdiff export`) or set MUSICDIFF_MODEL",
    )
}

/// The vocoder directory to use when none is named: `$MUSICDIFF_VOCODER`, else
/// `models/vocoder` beside the binary (or an ancestor) or in the working directory.
pub fn vocoder_dir() -> Result<PathBuf, NotFound> {
    find_dir(
        "vocoder directory",
        None,
        VOCODER_ENV,
        "models/vocoder",
        "pass --vocoder DIR (a directory made by `musicdiff vocoder export`) or set MUSICDIFF_VOCODER",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_is_taken_at_its_word_and_the_search_never_uses_the_source_tree() {
        let dir = std::env::temp_dir().join("musicdiff-locate-test-absent");
        assert_eq!(
            candidates(Some(&dir), "MUSICDIFF_TEST_UNSET_VAR", "x"),
            std::slice::from_ref(&dir)
        );
        let err =
            find_dir("thing", Some(&dir), "MUSICDIFF_TEST_UNSET_VAR", "x", "hint").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("thing not found at {}; hint", dir.display())
        );
        // Without flag or variable: the binary's directory and its ancestors, then the working
        // directory; nothing else (no path compiled in from the build machine).
        let found = candidates(None, "MUSICDIFF_TEST_UNSET_VAR", "some/thing");
        let exe = std::env::current_exe().unwrap().canonicalize().unwrap();
        let mut want: Vec<PathBuf> = exe
            .parent()
            .unwrap()
            .ancestors()
            .take(EXE_ANCESTORS)
            .map(|d| d.join("some/thing"))
            .collect();
        let here = std::path::absolute("some/thing").unwrap();
        if !want.contains(&here) {
            want.push(here);
        }
        assert_eq!(found, want);
        let many = find_dir(
            "thing",
            None,
            "MUSICDIFF_TEST_UNSET_VAR",
            "no/such/dir",
            "h",
        )
        .unwrap_err()
        .to_string();
        assert!(many.contains("any of") && many.ends_with("; h"), "{many}");
    }
}
