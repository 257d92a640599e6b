//! Paths held as keyed hashes: what planning knows of every path of an
//! archive, and what the streaming walker has seen, in memory that does not
//! grow with the length or depth of names.
//!
//! Planning keeps, for each file and symlink, 16 bytes in [`PathTable`]'s
//! entry map, and for each directory (listed or implied) 40 bytes: its mode,
//! its time, and whether it was created and timed yet. A path's key is two
//! independent keyed 64-bit hashes of its components (SipHash with random
//! keys, so an archive cannot aim at a collision): the first indexes the
//! tables, the second tells apart two paths the first one confuses, which
//! makes planning start over with new keys (see `plan.rs`). Refusing an
//! archive for a duplicate or a clash is confirmed by comparing the names
//! themselves.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

use super::times::EntryTime;

/// A path's two hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PathKey {
    pub(crate) index: u64,
    pub(crate) check: u64,
}

/// The hash keys of one plan.
#[derive(Debug, Default, Clone)]
pub(crate) struct PathKeys {
    index: RandomState,
    check: RandomState,
}

impl PathKeys {
    /// Calls `each` with every leading part of `path` (a checked relative
    /// path) and its key, shortest first, `path` itself last; stops at the
    /// first `Err`. Each part costs one component: hashing a path is linear
    /// in its length, whatever its depth.
    pub(crate) fn each_prefix<E>(
        &self,
        path: &Path,
        mut each: impl FnMut(&Path, PathKey) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut index = self.index.build_hasher();
        let mut check = self.check.build_hasher();
        let mut prefix = PathBuf::new();
        for part in path.components() {
            let Component::Normal(name) = part else {
                continue;
            };
            for h in [&mut index, &mut check] {
                h.write(name.as_encoded_bytes());
                h.write_u8(0); // no name holds a NUL: parts stay apart
            }
            prefix.push(name);
            let key = PathKey {
                index: index.finish(),
                check: check.finish(),
            };
            each(&prefix, key)?;
        }
        Ok(())
    }

    /// The key of `path` (none for the root).
    pub(crate) fn key(&self, path: &Path) -> Option<PathKey> {
        let mut last = None;
        let _ = self.each_prefix(path, |_, key| {
            last = Some(key);
            Ok::<(), ()>(())
        });
        last
    }
}

/// Keys are already uniform keyed hashes: the tables use them as they are.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type KeyMap<V> = HashMap<u64, V, BuildHasherDefault<KeyHasher>>;

/// What a path that is not a directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leaf {
    File = 1,
    Symlink = 2,
}

/// A directory of the plan, listed by the archive or implied by an entry
/// below it.
#[derive(Debug)]
pub(crate) struct DirNode {
    check: u64,
    /// Its entry's time when listed, else the newest time below it.
    secs: i64,
    nanos: u32,
    /// Permission bits its entry gives it.
    mode: u16,
    flags: u8,
    /// What writing did to it ([`CREATED`], [`TIMED`]): set through a
    /// shared table, while file workers read it.
    done: AtomicU8,
}

const LISTED: u8 = 1;
const HAS_TIME: u8 = 2;
const HAS_MODE: u8 = 4;
/// Also claimed by a file or a symlink (an archive refused).
const LEAF_FILE: u8 = 8;
const LEAF_SYMLINK: u8 = 16;
const CREATED: u8 = 1;
const TIMED: u8 = 2;

impl DirNode {
    pub(crate) fn listed(&self) -> bool {
        self.flags & LISTED != 0
    }

    pub(crate) fn time(&self) -> Option<EntryTime> {
        (self.flags & HAS_TIME != 0).then_some(EntryTime {
            secs: self.secs,
            nanos: self.nanos,
        })
    }

    pub(crate) fn mode(&self) -> Option<u32> {
        (self.flags & HAS_MODE != 0).then_some(u32::from(self.mode))
    }

    fn set_time(&mut self, t: EntryTime) {
        self.secs = t.secs;
        self.nanos = t.nanos;
        self.flags |= HAS_TIME;
    }
}

/// Two different paths with one index hash: the plan must start over with
/// new keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Collision;

/// What is already known at a path when an entry claims it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Known {
    Nothing,
    Leaf(Leaf),
    /// A directory an entry below it implied.
    ImpliedDir,
    ListedDir,
}

/// Every path of a plan: files and symlinks, and directories with their
/// modes and times.
#[derive(Default)]
pub(crate) struct PathTable {
    pub(crate) keys: PathKeys,
    leaves: KeyMap<u64>,
    dirs: KeyMap<DirNode>,
}

impl PathTable {
    pub(crate) fn with_capacity(keys: PathKeys, entries: usize) -> Self {
        PathTable {
            keys,
            leaves: KeyMap::with_capacity_and_hasher(entries, Default::default()),
            dirs: KeyMap::default(),
        }
    }

    /// Paths in the table.
    pub(crate) fn len(&self) -> usize {
        self.leaves.len() + self.dirs.len()
    }

    pub(crate) fn dirs(&self) -> usize {
        self.dirs.len()
    }

    /// What the table holds at `key`.
    pub(crate) fn known(&self, key: PathKey) -> Result<Known, Collision> {
        if let Some(&value) = self.leaves.get(&key.index) {
            if value & !3 != key.check & !3 {
                return Err(Collision);
            }
            return Ok(Known::Leaf(if value & 3 == Leaf::File as u64 {
                Leaf::File
            } else {
                Leaf::Symlink
            }));
        }
        match self.dirs.get(&key.index) {
            None => Ok(Known::Nothing),
            Some(d) if d.check != key.check => Err(Collision),
            Some(d) if d.listed() => Ok(Known::ListedDir),
            Some(_) => Ok(Known::ImpliedDir),
        }
    }

    /// Records a file or symlink at `key` (nothing else is there yet).
    pub(crate) fn add_leaf(&mut self, key: PathKey, leaf: Leaf) {
        self.leaves
            .insert(key.index, (key.check & !3) | leaf as u64);
    }

    /// Records the directory at `key` as implied by an entry below it with
    /// `time`; returns whether it is new.
    pub(crate) fn imply_dir(&mut self, key: PathKey, time: EntryTime) -> bool {
        let mut new = false;
        let dir = self.dirs.entry(key.index).or_insert_with(|| {
            new = true;
            DirNode {
                check: key.check,
                secs: 0,
                nanos: 0,
                mode: 0,
                flags: 0,
                done: AtomicU8::new(0),
            }
        });
        if !dir.listed() && dir.time().is_none_or(|t| t < time) {
            dir.set_time(time);
        }
        new
    }

    /// Records the directory at `key` as listed by the archive; returns
    /// whether it is new.
    pub(crate) fn list_dir(&mut self, key: PathKey, time: EntryTime, mode: Option<u32>) -> bool {
        let new = self.imply_dir(key, time);
        let dir = self.dirs.get_mut(&key.index).expect("just added");
        dir.flags |= LISTED;
        dir.set_time(time);
        if let Some(m) = mode {
            dir.mode = (m & 0o7777) as u16;
            dir.flags |= HAS_MODE;
        }
        new
    }

    /// Notes that a file or symlink claims the directory at `key`: the
    /// archive is refused once the name that does is known.
    pub(crate) fn mark_leaf(&mut self, key: PathKey, leaf: Leaf) {
        if let Some(d) = self.dirs.get_mut(&key.index) {
            if d.check == key.check {
                d.flags |= match leaf {
                    Leaf::File => LEAF_FILE,
                    Leaf::Symlink => LEAF_SYMLINK,
                };
            }
        }
    }

    /// The file or symlink at `key`, if one claims it.
    pub(crate) fn leaf_at(&self, key: PathKey) -> Option<Leaf> {
        if let Ok(Known::Leaf(leaf)) = self.known(key) {
            return Some(leaf);
        }
        let dir = self.dir(key)?;
        match dir.flags & (LEAF_FILE | LEAF_SYMLINK) {
            0 => None,
            LEAF_FILE => Some(Leaf::File),
            _ => Some(Leaf::Symlink),
        }
    }

    pub(crate) fn dir(&self, key: PathKey) -> Option<&DirNode> {
        self.dirs.get(&key.index).filter(|d| d.check == key.check)
    }

    /// Marks the directory at `key` created; false if it already was (or is
    /// not a directory of the plan). One thread creates directories while
    /// others write files and read the table.
    pub(crate) fn mark_created(&self, key: PathKey) -> bool {
        self.mark_done(key, CREATED)
    }

    /// Marks the directory at `key` timed; false if it already was.
    pub(crate) fn mark_timed(&self, key: PathKey) -> bool {
        self.mark_done(key, TIMED)
    }

    fn mark_done(&self, key: PathKey, flag: u8) -> bool {
        match self.dir(key) {
            Some(d) => d.done.fetch_or(flag, Ordering::Relaxed) & flag == 0,
            None => false,
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
/// 64-bit hashes: about 10 bytes a file and 20 a directory, whatever the
/// length of its path (the walker records every ancestor of every entry).
/// Two paths with one hash would look like one; the walker then sees a
/// clash or fails to create a file, and steps aside, so a collision costs
/// time, never correctness.
#[derive(Default)]
pub(crate) struct SeenPaths {
    keys: RandomState,
    files: std::collections::HashSet<u64, BuildHasherDefault<KeyHasher>>,
    /// Directories, and whether each was listed.
    dirs: KeyMap<bool>,
}

impl SeenPaths {
    pub(crate) fn get(&self, path: &Path) -> Option<Seen> {
        let key = self.keys.hash_one(path);
        if self.files.contains(&key) {
            return Some(Seen::File);
        }
        self.dirs.get(&key).map(|&listed| Seen::Dir { listed })
    }

    pub(crate) fn insert(&mut self, path: &Path, seen: Seen) {
        let key = self.keys.hash_one(path);
        match seen {
            Seen::File => {
                self.dirs.remove(&key);
                self.files.insert(key);
            }
            Seen::Dir { listed } => {
                self.files.remove(&key);
                self.dirs.insert(key, listed);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.files.len() + self.dirs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> EntryTime {
        EntryTime { secs, nanos: 0 }
    }

    #[test]
    fn prefixes_are_keyed_part_by_part() {
        let keys = PathKeys::default();
        let mut seen = Vec::new();
        keys.each_prefix(Path::new("a/b/c"), |p, k| {
            seen.push((p.to_path_buf(), k));
            Ok::<(), ()>(())
        })
        .unwrap();
        let paths: Vec<_> = seen.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(paths, ["a", "a/b", "a/b/c"].map(PathBuf::from));
        assert_eq!(keys.key(Path::new("a/b")), Some(seen[1].1));
        assert_eq!(keys.key(Path::new("")), None);
        // Parts stay apart: "ab/c" is not "a/bc".
        assert_ne!(keys.key(Path::new("ab/c")), keys.key(Path::new("a/bc")));
        // Other keys, other hashes.
        assert_ne!(
            PathKeys::default().key(Path::new("a")),
            keys.key(Path::new("a"))
        );
    }

    #[test]
    fn the_table_tells_files_listed_and_implied_directories_apart() {
        let keys = PathKeys::default();
        let mut table = PathTable::with_capacity(keys.clone(), 4);
        let key = |p: &str| keys.key(Path::new(p)).unwrap();
        assert_eq!(table.known(key("a")), Ok(Known::Nothing));
        assert!(table.imply_dir(key("a"), t(5)));
        assert!(!table.imply_dir(key("a"), t(9)));
        assert!(!table.imply_dir(key("a"), t(7)));
        assert_eq!(table.known(key("a")), Ok(Known::ImpliedDir));
        assert_eq!(
            table.dir(key("a")).unwrap().time(),
            Some(t(9)),
            "newest below"
        );
        assert!(!table.list_dir(key("a"), t(1), Some(0o40700)));
        assert_eq!(table.known(key("a")), Ok(Known::ListedDir));
        let a = table.dir(key("a")).unwrap();
        assert_eq!((a.time(), a.mode()), (Some(t(1)), Some(0o700)), "its own");
        table.imply_dir(key("a"), t(20));
        assert_eq!(table.dir(key("a")).unwrap().time(), Some(t(1)));
        table.add_leaf(key("a/f"), Leaf::Symlink);
        assert_eq!(table.known(key("a/f")), Ok(Known::Leaf(Leaf::Symlink)));
        assert_eq!((table.len(), table.dirs()), (2, 1));
        assert!(table.mark_created(key("a")));
        assert!(!table.mark_created(key("a")));
        assert!(table.mark_timed(key("a")));
        assert!(!table.mark_created(key("a/f")), "not a directory");
        // One index hash, another check hash: a collision.
        let other = PathKey {
            index: key("a").index,
            check: key("a").check ^ 0x10,
        };
        assert_eq!(table.known(other), Err(Collision));
        let other = PathKey {
            index: key("a/f").index,
            check: key("a/f").check ^ 0x10,
        };
        assert_eq!(table.known(other), Err(Collision));
    }
}
