//! Tests across the C ABI's objects: the generated header, and NULL
//! arguments everywhere.

use super::test_support::{cs, text};
use super::*;

/// What build.rs generated; see build.rs for the design.
const GENERATED_HEADER: &str = include_str!(concat!(env!("OUT_DIR"), "/zipdeploy.h"));

#[test]
fn committed_header_is_the_generated_one() {
    assert!(
        GENERATED_HEADER.contains("#define ZIPDEPLOY_H"),
        "cbindgen failed in build.rs: {GENERATED_HEADER}"
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/include/zipdeploy.h");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == GENERATED_HEADER,
        "include/zipdeploy.h is not what src/ffi/ generates. Regenerate it with \
         `cargo build` (without ZIPDEPLOY_CHECK_HEADER or CI set), review the diff \
         and commit it."
    );
    let version = format!(
        "#define ZIPDEPLOY_VERSION \"{}\"",
        env!("CARGO_PKG_VERSION")
    );
    assert!(GENERATED_HEADER.contains(&version));
    assert!(GENERATED_HEADER.contains("ZIPDEPLOY_STAGE_FETCH = 1"));
}

#[test]
fn null_arguments_give_a_status_never_a_crash() {
    let null = std::ptr::null_mut();
    let url = cs("http://example.com/a.zip");
    // SAFETY: NULL handles and NULL strings are part of the contract;
    // `url` outlives the calls.
    unsafe {
        assert_eq!(
            zipdeploy_deploy_set_url(null, url.as_ptr()),
            ZIPDEPLOY_INVALID_ARGUMENT
        );
        assert_eq!(
            zipdeploy_deploy_set_dest(null, url.as_ptr()),
            ZIPDEPLOY_INVALID_ARGUMENT
        );
        assert_eq!(
            zipdeploy_deploy_set_sha256(null, std::ptr::null()),
            ZIPDEPLOY_INVALID_ARGUMENT
        );
        assert_eq!(
            zipdeploy_deploy_set_retries(null, 1),
            ZIPDEPLOY_INVALID_ARGUMENT
        );
        assert_eq!(
            zipdeploy_deploy_set_progress(null, None, null.cast()),
            ZIPDEPLOY_INVALID_ARGUMENT
        );
        assert_eq!(
            zipdeploy_deploy_run(null, null.cast(), null.cast()),
            ZIPDEPLOY_INVALID_ARGUMENT
        );
        assert_eq!(
            zipdeploy_deploy_last_status(null),
            ZIPDEPLOY_INVALID_ARGUMENT
        );
        assert_eq!(text(zipdeploy_deploy_last_error(null)), "");
        zipdeploy_deploy_free(null);
        zipdeploy_report_free(null.cast());
        zipdeploy_error_free(null.cast());
        assert_eq!(text(zipdeploy_report_digest(null.cast())), "");
        assert_eq!(zipdeploy_report_files(null.cast()), 0);
        assert_eq!(zipdeploy_report_noop(null.cast()), 0);
        assert_eq!(
            zipdeploy_error_code(null.cast()),
            ZIPDEPLOY_INVALID_ARGUMENT
        );
        assert_eq!(zipdeploy_error_class(null.cast()), 2);
        assert_eq!(text(zipdeploy_error_message(null.cast())), "");

        // A NULL run on error_out still yields an owned error.
        let mut error: *mut zipdeploy_error = std::ptr::null_mut();
        assert_eq!(
            zipdeploy_deploy_run(null, null.cast(), &mut error),
            ZIPDEPLOY_INVALID_ARGUMENT
        );
        assert_eq!(
            text(zipdeploy_error_message(error)),
            "deploy handle is NULL"
        );
        zipdeploy_error_free(error);

        let d = zipdeploy_deploy_new();
        assert_eq!(
            zipdeploy_deploy_set_url(d, std::ptr::null()),
            ZIPDEPLOY_INVALID_ARGUMENT
        );
        assert_eq!(zipdeploy_deploy_last_status(d), ZIPDEPLOY_INVALID_ARGUMENT);
        assert_eq!(text(zipdeploy_deploy_last_error(d)), "url is NULL");
        assert_eq!(
            zipdeploy_deploy_add_header(d, url.as_ptr(), std::ptr::null()),
            ZIPDEPLOY_INVALID_ARGUMENT
        );
        zipdeploy_deploy_free(d);
    }
}
