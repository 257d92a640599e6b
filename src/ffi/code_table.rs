// The result codes of the C ABI: one row per code, the only place they are
// written down. Not a module: `error.rs` includes it to make the
// `ZIPDEPLOY_*` constants and the code -> name table, and `build.rs`
// includes it to write their `#define`s into the C header. Each row is
//
//     /// Its documentation (the header's comment for the constant).
//     ZIPDEPLOY_NAME = number, "short name";
//
// The number is stable; `number / 10` is its class. A code the Rust library
// returns is `crate::Error::code()` of its variant (the unit test
// `ffi::error::tests::every_error_variant_has_its_code_name_and_class`
// checks every variant against this table); the others are the ABI's own.
codes! {
    /// Success.
    ZIPDEPLOY_OK = 0, "ok";
    /// A panic inside the library was caught at the boundary (a bug; class 1).
    ZIPDEPLOY_PANIC = 10, "internal error";
    /// The package location could not be parsed or is not supported.
    ZIPDEPLOY_INVALID_URL = 20, "invalid URL";
    /// The expected SHA-256 is not 64 hex digits (optionally prefixed `sha256:`).
    ZIPDEPLOY_INVALID_DIGEST = 21, "invalid digest";
    /// An option is missing or out of range (no URL, no destination, ...).
    ZIPDEPLOY_CONFIG = 22, "invalid configuration";
    /// A required pointer argument was NULL, or a value is out of range.
    ZIPDEPLOY_INVALID_ARGUMENT = 23, "invalid argument";
    /// A string argument is not valid UTF-8.
    ZIPDEPLOY_INVALID_UTF8 = 24, "invalid UTF-8";
    /// The deploy handle is in use: called from its own progress callback, or
    /// from another thread while a call on it is running.
    ZIPDEPLOY_BUSY = 25, "handle busy";
    /// The server answered with an HTTP status that is not success.
    ZIPDEPLOY_HTTP_STATUS = 30, "HTTP status";
    /// The connection failed (DNS, refused, reset, ...).
    ZIPDEPLOY_NETWORK = 31, "network error";
    /// A connect, stall or overall timeout expired.
    ZIPDEPLOY_TIMEOUT = 32, "timeout";
    /// The body ended before the length the server announced.
    ZIPDEPLOY_TRUNCATED = 33, "truncated download";
    /// A redirect was refused (loop, too many, or https to http).
    ZIPDEPLOY_REDIRECT = 34, "redirect refused";
    /// TLS failed (untrusted certificate, handshake error).
    ZIPDEPLOY_TLS = 35, "TLS error";
    /// Every location of the package (its URL and mirrors) failed; the message
    /// lists why each did.
    ZIPDEPLOY_MIRRORS_FAILED = 36, "all mirrors failed";
    /// The package's SHA-256 is not the expected one.
    ZIPDEPLOY_DIGEST_MISMATCH = 40, "digest mismatch";
    /// The package's minisign signature does not verify with the key (wrong
    /// bytes, another key, malformed, or a legacy non-prehashed signature).
    ZIPDEPLOY_SIGNATURE_INVALID = 41, "signature invalid";
    /// The package's minisign signature was not found (HTTP 404/410, no file).
    ZIPDEPLOY_SIGNATURE_MISSING = 42, "signature missing";
    /// The SHA-256 sidecar file is unusable (too big, no line for the package,
    /// ambiguous, not a digest).
    ZIPDEPLOY_DIGEST_SIDECAR = 43, "digest sidecar unusable";
    /// The package is not a ZIP archive.
    ZIPDEPLOY_NOT_ZIP = 50, "not a ZIP archive";
    /// The archive is corrupt or ambiguous.
    ZIPDEPLOY_CORRUPT_ARCHIVE = 51, "corrupt archive";
    /// An entry would escape the destination or is of a refused kind.
    ZIPDEPLOY_UNSAFE_ENTRY = 52, "unsafe entry";
    /// An entry uses a feature that is not extracted (encryption, ...).
    ZIPDEPLOY_UNSUPPORTED_ENTRY = 53, "unsupported entry";
    /// A resource limit was exceeded (download, total size, entries, ratio,
    /// path depth or length, central directory metadata).
    ZIPDEPLOY_LIMIT_EXCEEDED = 60, "limit exceeded";
    /// A filesystem operation failed.
    ZIPDEPLOY_IO = 70, "I/O error";
    /// The destination's filesystem has too little free space, or too few
    /// free inodes for the archive's entries.
    ZIPDEPLOY_NO_SPACE = 71, "no space";
    /// A rollback was asked for but no previous release is kept.
    ZIPDEPLOY_NO_RELEASE = 72, "no release to roll back to";
    /// A hook refused the staged tree.
    ZIPDEPLOY_HOOK = 80, "hook failed";
    /// The progress callback returned non-zero: the deploy was cancelled and the
    /// destination left as it was.
    ZIPDEPLOY_CANCELLED = 90, "cancelled";
}
