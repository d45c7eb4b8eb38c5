//! Recursive directory listing shared by the dataset readers and the corpus builder.
//!
//! Symbolic links are followed, but each folder is walked at most once: the real folders below
//! the root are walked first, then the links, and a link to a folder already walked (a loop such
//! as `train/loop -> .`, a second way into the same folder such as `test/up -> ../train`) or to
//! a folder that contains the root is skipped. A file reached twice (a symbolic or hard link to a
//! file already listed) is listed once, under its first path (real paths before links, then in
//! path order). Everything skipped is returned with the reason, for the callers to report.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::error::PathError;

type Result<T, E = PathError> = std::result::Result<T, E>;

/// A path the walk did not list, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedLink {
    pub path: PathBuf,
    pub reason: String,
    /// It leads to a folder (a loop or a second way into a folder). Otherwise it is a second
    /// path to a file, or a broken link, which matters to a caller only if it wanted that file.
    pub folder: bool,
}

/// What a walk found.
#[derive(Debug, Clone, Default)]
pub struct Walk {
    /// Every file, once, sorted by path.
    pub files: Vec<PathBuf>,
    /// Links (and second paths to a file) that were not followed, sorted by path.
    pub skipped: Vec<SkippedLink>,
}

/// Identity of a file on disk: (device, inode) on Unix, so that hard links are one file too;
/// the canonical path elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileId(#[cfg(unix)] (u64, u64), #[cfg(not(unix))] PathBuf);

/// The identity of the file at `path` (following links); `None` if it cannot be read.
pub fn file_id(path: &Path) -> Option<FileId> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileId((m.dev(), m.ino())))
    }
    #[cfg(not(unix))]
    {
        std::fs::canonicalize(path).ok().map(FileId)
    }
}

/// Every file below `root`, following links to folders not yet walked (see the module header).
pub fn walk(root: &Path) -> Result<Walk> {
    let canonical_root = std::fs::canonicalize(root).map_err(|e| PathError::new(root, e))?;
    let mut state = State {
        walked: HashSet::from([canonical_root.clone()]),
        ..Default::default()
    };
    state.walk_tree(root)?;
    // Links are followed only once every real folder below the root is walked, so that a link
    // never claims a folder that is also reached directly.
    while !state.links.is_empty() {
        let mut links = std::mem::take(&mut state.links);
        links.sort();
        for link in links {
            state.follow(&link, &canonical_root)?;
        }
    }
    Ok(state.finish())
}

/// The files below `root` that `wanted` keeps, and what the walk skipped that matters to them:
/// every folder link not followed, and second paths to wanted files.
pub fn matching(root: &Path, wanted: impl Fn(&Path) -> bool) -> Result<Walk> {
    let walk = walk(root)?;
    Ok(Walk {
        files: walk.files.into_iter().filter(|p| wanted(p)).collect(),
        skipped: walk
            .skipped
            .into_iter()
            .filter(|s| s.folder || wanted(&s.path))
            .collect(),
    })
}

/// Every file below `root` (see [`walk`]), without the list of what was skipped.
pub fn files(root: &Path) -> Result<Vec<PathBuf>> {
    Ok(walk(root)?.files)
}

#[derive(Default)]
struct State {
    /// Canonical paths of the folders walked.
    walked: HashSet<PathBuf>,
    /// Files found: (reached through a link, path).
    files: Vec<(bool, PathBuf)>,
    /// Links found and not yet followed.
    links: Vec<PathBuf>,
    skipped: Vec<SkippedLink>,
}

impl State {
    /// Walks the real folders below `dir` (already marked walked); links are queued.
    fn walk_tree(&mut self, dir: &Path) -> Result<()> {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).map_err(|e| PathError::new(&dir, e))? {
                let entry = entry.map_err(|e| PathError::new(&dir, e))?;
                let path = entry.path();
                let kind = entry.file_type().map_err(|e| PathError::new(&path, e))?;
                if kind.is_symlink() {
                    self.links.push(path);
                } else if kind.is_dir() {
                    let canonical =
                        std::fs::canonicalize(&path).map_err(|e| PathError::new(&path, e))?;
                    if self.walked.insert(canonical) {
                        stack.push(path);
                    } else {
                        self.skip(path, "a folder already walked (reached twice)", true);
                    }
                } else {
                    self.files.push((false, path));
                }
            }
        }
        Ok(())
    }

    /// Follows the link at `link` if it leads to a file or to a folder not walked yet.
    fn follow(&mut self, link: &Path, canonical_root: &Path) -> Result<()> {
        let Ok(target) = std::fs::canonicalize(link) else {
            self.skip(link.to_path_buf(), "broken symbolic link", false);
            return Ok(());
        };
        if !target.is_dir() {
            self.files.push((true, link.to_path_buf()));
        } else if canonical_root.starts_with(&target) {
            self.skip(
                link.to_path_buf(),
                format!(
                    "symbolic link to {}, which contains the dataset (a loop); not followed",
                    target.display()
                ),
                true,
            );
        } else if !self.walked.insert(target.clone()) {
            self.skip(
                link.to_path_buf(),
                format!(
                    "symbolic link to {}, a folder already walked; not followed",
                    target.display()
                ),
                true,
            );
        } else {
            self.walk_tree(link)?;
        }
        Ok(())
    }

    fn skip(&mut self, path: PathBuf, reason: impl Into<String>, folder: bool) {
        self.skipped.push(SkippedLink {
            path,
            reason: reason.into(),
            folder,
        });
    }

    /// Lists each file once (real paths first), sorted by path.
    fn finish(mut self) -> Walk {
        self.files.sort();
        let mut seen: HashMap<FileId, PathBuf> = HashMap::new();
        let mut files = Vec::with_capacity(self.files.len());
        for (_, path) in std::mem::take(&mut self.files) {
            match file_id(&path) {
                Some(id) => match seen.get(&id) {
                    Some(first) => {
                        let reason = format!("the same file as {}; listed once", first.display());
                        self.skip(path, reason, false);
                    }
                    None => {
                        seen.insert(id, path.clone());
                        files.push(path);
                    }
                },
                None => files.push(path),
            }
        }
        files.sort();
        self.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        Walk {
            files,
            skipped: self.skipped,
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, path.to_string_lossy().as_bytes()).unwrap();
    }

    fn names(root: &Path, paths: &[PathBuf]) -> Vec<String> {
        paths
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn symlink_loop_is_followed_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in ["train/a.wav", "train/b.wav", "train/sub/c.wav"] {
            touch(&root.join(f));
        }
        // Two loops: with either one the old walker never ended.
        symlink(".", root.join("train/loop")).unwrap();
        symlink("..", root.join("train/sub/up")).unwrap();
        let w = walk(root).unwrap();
        assert_eq!(
            names(root, &w.files),
            ["train/a.wav", "train/b.wav", "train/sub/c.wav"]
        );
        assert_eq!(
            names(
                root,
                &w.skipped.iter().map(|s| s.path.clone()).collect::<Vec<_>>()
            ),
            ["train/loop", "train/sub/up"]
        );
        assert!(w.skipped[0].reason.contains("already walked"), "{w:?}");
    }

    #[test]
    fn symlink_to_an_ancestor_of_the_root_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        touch(&root.join("train/a.wav"));
        touch(&dir.path().join("elsewhere/x.wav"));
        symlink("../..", root.join("train/top")).unwrap();
        let w = walk(&root).unwrap();
        assert_eq!(names(&root, &w.files), ["train/a.wav"]);
        assert_eq!(w.skipped.len(), 1, "{w:?}");
        assert!(
            w.skipped[0].reason.contains("contains the dataset"),
            "{w:?}"
        );
    }

    #[test]
    fn symlink_from_test_into_train_does_not_list_train_twice() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(&root.join("train/a.wav"));
        touch(&root.join("test/d.wav"));
        // "test" sorts before "train": the link is found before the real folder is walked.
        symlink("../train", root.join("test/up")).unwrap();
        let w = walk(root).unwrap();
        assert_eq!(names(root, &w.files), ["test/d.wav", "train/a.wav"]);
        assert_eq!(w.skipped.len(), 1);
        assert_eq!(w.skipped[0].path, root.join("test/up"));
    }

    #[test]
    fn symlinked_file_already_listed_is_listed_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(&root.join("train/a.wav"));
        // "aa.wav" sorts after "a.wav", "0.wav" before it: the real file wins either way.
        symlink("a.wav", root.join("train/aa.wav")).unwrap();
        symlink("a.wav", root.join("train/0.wav")).unwrap();
        std::fs::hard_link(root.join("train/a.wav"), root.join("train/hard.wav")).unwrap();
        let w = walk(root).unwrap();
        assert_eq!(names(root, &w.files), ["train/a.wav"]);
        assert_eq!(w.skipped.len(), 3, "{w:?}");
        assert!(w.skipped.iter().all(|s| s.reason.contains("same file")));
    }

    #[test]
    fn links_to_folders_outside_the_root_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        touch(&root.join("train/a.wav"));
        touch(&dir.path().join("store/x.wav"));
        symlink("../../store", root.join("train/more")).unwrap();
        // A dangling link is reported, not an error.
        symlink("nowhere", root.join("train/gone.wav")).unwrap();
        let w = walk(&root).unwrap();
        assert_eq!(names(&root, &w.files), ["train/a.wav", "train/more/x.wav"]);
        assert_eq!(w.skipped.len(), 1);
        assert!(w.skipped[0].reason.contains("broken"));
    }
}
