//! The directories a plan creates, held in memory linear in the archive.
//!
//! An entry `n` components deep implies `n - 1` directories. Storing each
//! of them as a path costs depth × length per entry: four entries 32,000
//! directories deep (512 KB of archive) took planning to 4 GB. [`Dirs`]
//! keeps only each entry's parent and the explicit directories, sorted so
//! that a subtree is contiguous, and derives every ancestor from the one
//! before it while iterating.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::path::{Components, Path, PathBuf};

use super::times::EntryTime;

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

/// What the streaming walker has met at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    File,
    /// A directory, created for its own entry (`listed`) or for one below.
    Dir {
        listed: bool,
    },
}

/// Paths the streaming walker has seen, and what each is, held as keyed
/// 64-bit hashes: about 24 bytes a path, whatever its length (the walker
/// records every ancestor of every entry). Two paths with one hash would
/// look like one; the walker then sees a clash or fails to create a file,
/// and steps aside, so a collision costs time, never correctness.
#[derive(Default)]
pub(crate) struct SeenPaths {
    keys: RandomState,
    seen: HashMap<u64, Seen>,
}

impl SeenPaths {
    pub(crate) fn get(&self, path: &Path) -> Option<Seen> {
        self.seen.get(&self.keys.hash_one(path)).copied()
    }

    pub(crate) fn insert(&mut self, path: &Path, seen: Seen) {
        self.seen.insert(self.keys.hash_one(path), seen);
    }

    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }
}

/// The time each directory gets: its own entry's when the archive lists it,
/// else the newest time of anything listed below it. Held as keyed 64-bit
/// hashes of the directories' paths, about 40 bytes a directory whatever
/// its depth, and each entry's ancestors are hashed in one pass over its
/// name (prefix by prefix), so planning stays linear in the archive. A hash
/// collision could only give one directory another's time.
#[derive(Debug, Default)]
pub(crate) struct DirTimes {
    keys: RandomState,
    listed: HashMap<u64, EntryTime>,
    newest_below: HashMap<u64, EntryTime>,
}

impl DirTimes {
    /// The key of every leading part of `path`, shortest first, `path`
    /// itself last.
    fn prefix_keys<'p>(&self, path: &'p Path) -> impl Iterator<Item = u64> + 'p {
        let mut hasher = self.keys.build_hasher();
        path.components().map(move |part| {
            hasher.write(part.as_os_str().as_encoded_bytes());
            hasher.write_u8(0); // no name holds a NUL: parts stay apart
            hasher.finish()
        })
    }

    fn key(&self, dir: &Path) -> Option<u64> {
        self.prefix_keys(dir).last()
    }

    /// `dir` is listed by the archive with `time`.
    pub(crate) fn list(&mut self, dir: &Path, time: EntryTime) {
        if let Some(key) = self.key(dir) {
            self.listed.insert(key, time);
        }
    }

    /// The time of `dir` when the archive lists it.
    pub(crate) fn listed(&self, dir: &Path) -> Option<EntryTime> {
        self.listed.get(&self.key(dir)?).copied()
    }

    /// Something listed at `path` has `time`: the directories above it take
    /// it if it is the newest below them.
    pub(crate) fn below(&mut self, path: &Path, time: EntryTime) {
        let keys: Vec<u64> = self.prefix_keys(path).collect();
        for key in &keys[..keys.len().saturating_sub(1)] {
            let newest = self.newest_below.entry(*key).or_insert(time);
            *newest = (*newest).max(time);
        }
    }

    /// The time `dir` gets.
    pub(crate) fn time_of(&self, dir: &Path) -> Option<EntryTime> {
        let key = self.key(dir)?;
        self.listed
            .get(&key)
            .or_else(|| self.newest_below.get(&key))
            .copied()
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
