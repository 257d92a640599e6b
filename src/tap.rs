//! Another reader of the package bytes in the same pass as the hash
//! (e.g. a signature verifier), without the fetch stage knowing what it is.

use std::io::{self, Write};

/// Sees every byte of a package as it is written and hashed, e.g. a
/// signature verifier that works in the same pass.
pub(crate) trait Tap {
    /// The next bytes of the package.
    fn update(&mut self, bytes: &[u8]);
    /// The download starts over: forget everything seen.
    fn restart(&mut self);
}

/// Discards bytes after showing them to a [`Tap`].
pub(crate) struct TapSink<'t>(pub(crate) Option<&'t mut dyn Tap>);

impl Write for TapSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(tap) = self.0.as_mut() {
            tap.update(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
