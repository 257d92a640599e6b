//! Doctests that are not examples of an item: the README's Rust blocks
//! must compile, and what the public API keeps to itself must not.

/// The README's Rust examples, compiled (not run) by `cargo test --doc`.
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The result types grow: code outside the crate cannot build them with a
/// literal, and must match them with `..` / `_`.
///
/// ```compile_fail
/// let _ = zipdeploy::Timings {
///     fetch: Default::default(),
///     extract: Default::default(),
///     install: Default::default(),
///     total: Default::default(),
/// };
/// ```
///
/// ```compile_fail
/// fn name(stage: zipdeploy::Stage) -> &'static str {
///     match stage {
///         zipdeploy::Stage::Fetch => "fetch",
///         zipdeploy::Stage::Extract => "extract",
///         zipdeploy::Stage::Install => "install",
///     }
/// }
/// ```
///
/// ```compile_fail
/// fn done(p: &zipdeploy::Progress) -> bool {
///     let zipdeploy::Progress { bytes, total_bytes, .. } = *p;
///     let zipdeploy::Progress { stage: _, bytes: _, total_bytes: _, entries: _, total_entries: _ } = *p;
///     Some(bytes) == total_bytes
/// }
/// ```
///
/// The hasher's internals are the fetch stage's own:
///
/// ```compile_fail
/// let mut w = zipdeploy::digest::HashingWriter::new(Vec::new());
/// w.reset();
/// ```
pub struct NonExhaustiveDoctests;
