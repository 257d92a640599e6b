//! Helpers of the C ABI's unit tests.

use std::ffi::{c_char, CStr, CString};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::Sha256Digest;

/// A string a getter returned.
pub(super) fn text(p: *const c_char) -> String {
    assert!(!p.is_null());
    // SAFETY: every string getter returns a NUL-terminated string that
    // is valid at least until the next call on its handle.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string()
}

/// A C string argument.
pub(super) fn cs(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// A small package in `dir`; returns its path and SHA-256.
pub(super) fn package(dir: &Path, version: &str) -> (PathBuf, String) {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    w.start_file("VERSION", options).unwrap();
    w.write_all(version.as_bytes()).unwrap();
    w.add_directory("static/", options).unwrap();
    w.start_file("static/app.css", options).unwrap();
    w.write_all(b"body {}\n").unwrap();
    let bytes = w.finish().unwrap().into_inner();
    let path = dir.join(format!("app-{version}.zip"));
    std::fs::write(&path, &bytes).unwrap();
    (path, Sha256Digest::of(&bytes).to_hex())
}
