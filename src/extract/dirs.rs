//! The directories a plan creates, held in memory linear in the archive.
//!
//! An entry `n` components deep implies `n - 1` directories. Storing each
//! of them as a path costs depth × length per entry: four entries 32,000
//! directories deep (512 KB of archive) took planning to 4 GB. [`Dirs`]
//! keeps only each entry's parent and the explicit directories, sorted so
//! that a subtree is contiguous, and derives every ancestor from the one
//! before it while iterating.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::path::{Components, Path, PathBuf};

/// Every directory to create, explicit or implied, parents first.
#[derive(Debug, Default)]
pub(crate) struct Dirs {
    /// Explicit directories and the parents of all entries: sorted by
    /// component, so ancestors come before descendants; no duplicates.
    leaves: Vec<PathBuf>,
    /// Directories in all, ancestors of `leaves` included.
    count: usize,
}

impl Dirs {
    /// The directories `leaves` and all their ancestors (`leaves` are the
    /// explicit directories and the parents of the other entries), or, if
    /// they are more than `max`, `Err` with how many were counted (`max` + 1:
    /// counting stops there, however many a hostile archive implies).
    pub(crate) fn new(mut leaves: Vec<PathBuf>, max: u64) -> Result<Dirs, u64> {
        leaves.retain(|p| !p.as_os_str().is_empty());
        leaves.sort_unstable();
        leaves.dedup();
        let mut dirs = Dirs { leaves, count: 0 };
        let mut count = 0;
        for _ in dirs.iter() {
            count += 1;
            if count as u64 > max {
                return Err(count as u64);
            }
        }
        dirs.count = count;
        Ok(dirs)
    }

    /// Directories in all.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Every directory, parents first, each once.
    pub(crate) fn iter(&self) -> Iter<'_> {
        Iter {
            leaves: self.leaves.iter(),
            current: PathBuf::new(),
            depth: 0,
            rest: None,
        }
    }
}

impl<'a> IntoIterator for &'a Dirs {
    type Item = PathBuf;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Walks from one leaf to the next: up to their common ancestor, then down
/// one component at a time, yielding each directory on the way down. Each
/// step costs one component, so a leaf costs its length, never depth ×
/// length.
pub(crate) struct Iter<'a> {
    leaves: std::slice::Iter<'a, PathBuf>,
    /// The directory yielded last, and its number of components.
    current: PathBuf,
    depth: usize,
    /// The components of the leaf being descended to, below `current`.
    rest: Option<Components<'a>>,
}

impl Iterator for Iter<'_> {
    type Item = PathBuf;

    fn next(&mut self) -> Option<PathBuf> {
        loop {
            if let Some(name) = self.rest.as_mut().and_then(Iterator::next) {
                self.current.push(name);
                self.depth += 1;
                return Some(self.current.clone());
            }
            let leaf = self.leaves.next()?;
            let common = leaf
                .components()
                .zip(self.current.components())
                .take_while(|(a, b)| a == b)
                .count();
            for _ in common..self.depth {
                self.current.pop();
            }
            self.depth = common;
            let mut rest = leaf.components();
            if common > 0 {
                rest.nth(common - 1); // past the common ancestor
            }
            self.rest = Some(rest);
        }
    }
}

/// Paths the streaming walker has seen, and whether each is a directory,
/// held as keyed 64-bit hashes: about 24 bytes a path, whatever its length
/// (the walker records every ancestor of every entry). Two paths with one
/// hash would look like one; the walker then sees a clash or fails to create
/// a file, and steps aside, so a collision costs time, never correctness.
#[derive(Default)]
pub(crate) struct SeenPaths {
    keys: RandomState,
    is_dir: HashMap<u64, bool>,
}

impl SeenPaths {
    pub(crate) fn get(&self, path: &Path) -> Option<bool> {
        self.is_dir.get(&self.keys.hash_one(path)).copied()
    }

    pub(crate) fn insert(&mut self, path: &Path, is_dir: bool) {
        self.is_dir.insert(self.keys.hash_one(path), is_dir);
    }

    pub(crate) fn len(&self) -> usize {
        self.is_dir.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_directory_comes_once_after_its_parent() {
        let leaves = ["a/b/c", "a", "x", "a/b-2", "a/b/d/e", "", "a/b/c", "x/y"];
        let leaves = leaves.iter().map(PathBuf::from).collect::<Vec<_>>();
        assert_eq!(Dirs::new(leaves.clone(), 7).unwrap_err(), 8);
        let dirs = Dirs::new(leaves, 8).unwrap();
        let all: Vec<PathBuf> = dirs.iter().collect();
        let expected = ["a", "a/b", "a/b/c", "a/b/d", "a/b/d/e", "a/b-2", "x", "x/y"];
        assert_eq!(all, expected.map(PathBuf::from));
        assert_eq!(dirs.len(), 8);
        assert_eq!(Dirs::default().iter().count(), 0);
    }

    #[test]
    fn a_deep_path_is_held_once() {
        let deep: PathBuf = (0..2000).map(|i| format!("d{i}")).collect();
        let dirs = Dirs::new(vec![deep.clone()], u64::MAX).unwrap();
        assert_eq!(dirs.leaves.len(), 1);
        assert_eq!(dirs.len(), 2000);
        assert_eq!(dirs.iter().last(), Some(deep));
    }
}
