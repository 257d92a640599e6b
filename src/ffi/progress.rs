//! Progress: the event C receives, the callback type, and how the callback
//! is kept on the thread that runs the deploy.

use std::ffi::{c_int, c_void};
use std::ops::ControlFlow;
use std::thread::{self, ThreadId};

use crate::{Progress, Stage};

/// The stage a progress event comes from (the `stage` field of
/// `zipdeploy_progress`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum zipdeploy_stage {
    /// Downloading (or reading) the package and hashing it.
    Fetch = 1,
    /// Extracting entries into the staging directory.
    Extract = 2,
    /// Activating the staged tree.
    Install = 3,
}

/// A progress event, passed to the callback by pointer; valid only during
/// the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct zipdeploy_progress {
    /// A `zipdeploy_stage` value (`ZIPDEPLOY_STAGE_FETCH`, ...).
    pub stage: c_int,
    /// Bytes done in this stage (downloaded, or written by extraction).
    pub bytes: u64,
    /// Bytes expected in this stage; 0 when unknown.
    pub total_bytes: u64,
    /// Entries extracted so far (extract stage).
    pub entries: u64,
    /// Entries in the archive (extract stage); 0 when unknown.
    pub total_entries: u64,
}

/// A progress callback: `userdata` is the pointer given to
/// `zipdeploy_deploy_set_progress`, `progress` is valid only during the call.
///
/// Return 0 to continue, non-zero to cancel: the deploy then fails with
/// `ZIPDEPLOY_CANCELLED` and the destination is left as it was. The last
/// event (stage `ZIPDEPLOY_STAGE_INSTALL`) comes once the tree is activated:
/// the deploy is done and its return is ignored. The callback
/// runs only on the thread that called `zipdeploy_deploy_run` (or
/// `zipdeploy_deploy_rollback`), never concurrently. It must not unwind
/// or `longjmp` out, and must not call functions on the same deploy handle
/// (they return `ZIPDEPLOY_BUSY`).
pub type zipdeploy_progress_callback = Option<
    unsafe extern "C" fn(userdata: *mut c_void, progress: *const zipdeploy_progress) -> c_int,
>;

/// The C progress callback and its userdata, as given to
/// `zipdeploy_deploy_set_progress`.
///
/// Not `Send` (it holds raw pointers), and never made so: the contract lets
/// C assume the callback runs only on the thread that called
/// `zipdeploy_deploy_run` or `_rollback`, so its userdata may be
/// thread-affine (a Python frame, a C stack object, thread-local state).
/// A run or rollback calls it only through [`Callback::on_this_thread`].
#[derive(Clone, Copy)]
pub(super) struct Callback {
    pub(super) f: unsafe extern "C" fn(*mut c_void, *const zipdeploy_progress) -> c_int,
    pub(super) userdata: *mut c_void,
}

impl Callback {
    /// Calls the C function with this event; its non-zero return cancels.
    /// Private: every call goes through [`Callback::on_this_thread`].
    fn call(&self, p: &Progress) -> ControlFlow<()> {
        let event = zipdeploy_progress {
            stage: match p.stage {
                Stage::Fetch => zipdeploy_stage::Fetch,
                Stage::Extract => zipdeploy_stage::Extract,
                Stage::Install => zipdeploy_stage::Install,
            } as c_int,
            bytes: p.bytes,
            total_bytes: p.total_bytes.unwrap_or(0),
            entries: p.entries,
            total_entries: p.total_entries.unwrap_or(0),
        };
        // SAFETY: `f` and `userdata` were given together by the caller of
        // `zipdeploy_deploy_set_progress`, who promised `f` may be called with
        // that userdata on the thread that runs the deploy, which is the
        // only thread that gets here (see `on_this_thread`); `&event` lives
        // for the whole call.
        match unsafe { (self.f)(self.userdata, &event) } {
            0 => ControlFlow::Continue(()),
            _ => ControlFlow::Break(()),
        }
    }

    /// The progress sink for a run on the current thread: `Send`, as
    /// `Deploy::progress` requires, yet it calls C only when invoked on this
    /// thread. An event reported from any other thread is skipped: the
    /// pipeline's own thread reports each stage and sends a heartbeat at
    /// least every 100 ms while it waits, so the callback still sees the
    /// progress and a cancel still takes effect promptly.
    pub(super) fn on_this_thread(
        self,
    ) -> impl FnMut(&Progress) -> ControlFlow<()> + Send + 'static {
        let callback = ThreadBound::here(self);
        move |p| match callback.get() {
            Some(callback) => callback.call(p),
            None => ControlFlow::Continue(()),
        }
    }
}

/// A value usable only on the thread that made it: [`ThreadBound::get`]
/// gives it there and `None` anywhere else. This is what lets a
/// thread-affine value travel inside something that must be `Send`.
struct ThreadBound<T: Copy> {
    value: T,
    thread: ThreadId,
}

impl<T: Copy> ThreadBound<T> {
    fn here(value: T) -> Self {
        ThreadBound {
            value,
            thread: thread::current().id(),
        }
    }

    fn get(&self) -> Option<T> {
        (thread::current().id() == self.thread).then_some(self.value)
    }
}

// SAFETY: the value is reached only through `get`, which hands it out on the
// thread that made the `ThreadBound` and on no other (thread ids are never
// reused); `T: Copy` has no drop glue, so dropping a `ThreadBound` elsewhere
// runs none of `T`'s code either. Moving one to another thread therefore
// never lets that thread use the value. (`Sync` is not claimed.)
unsafe impl<T: Copy> Send for ThreadBound<T> {}

#[cfg(test)]
mod tests {
    use super::super::test_support::{cs, package, text};
    use super::*;
    use crate::ffi::*;

    /// Userdata of the test callback.
    struct Seen {
        deploy: *mut zipdeploy_deploy,
        events: Vec<zipdeploy_progress>,
        cancel_at: usize,
        reentry: Vec<c_int>,
    }

    unsafe extern "C" fn on_progress(userdata: *mut c_void, p: *const zipdeploy_progress) -> c_int {
        // SAFETY: the tests pass a `&mut Seen` that outlives the run, and the
        // library passes a valid event.
        let (seen, p) = unsafe { (&mut *userdata.cast::<Seen>(), *p) };
        seen.events.push(p);
        // Calls on the running handle are refused, not aliased.
        // SAFETY: the handle is live (it is running this callback).
        seen.reentry
            .push(unsafe { zipdeploy_deploy_set_retries(seen.deploy, 1) });
        c_int::from(seen.events.len() >= seen.cancel_at)
    }

    #[test]
    fn progress_callback_sees_stages_and_cancels_cleanly() {
        let tmp = tempfile::tempdir().unwrap();
        let (pkg1, _) = package(tmp.path(), "1");
        let (pkg2, _) = package(tmp.path(), "2");
        let dest = tmp.path().join("app");
        // SAFETY: `d` is live until freed; `seen` outlives both runs.
        unsafe {
            let d = zipdeploy_deploy_new();
            let mut seen = Seen {
                deploy: d,
                events: Vec::new(),
                cancel_at: usize::MAX,
                reentry: Vec::new(),
            };
            let userdata = (&raw mut seen).cast::<c_void>();
            assert_eq!(
                zipdeploy_deploy_set_progress(d, Some(on_progress), userdata),
                ZIPDEPLOY_OK
            );
            assert_eq!(
                zipdeploy_deploy_set_url(d, cs(pkg1.to_str().unwrap()).as_ptr()),
                ZIPDEPLOY_OK
            );
            assert_eq!(
                zipdeploy_deploy_set_dest(d, cs(dest.to_str().unwrap()).as_ptr()),
                ZIPDEPLOY_OK
            );
            assert_eq!(
                zipdeploy_deploy_run(d, std::ptr::null_mut(), std::ptr::null_mut()),
                ZIPDEPLOY_OK
            );
            let stages: Vec<c_int> = seen.events.iter().map(|e| e.stage).collect();
            assert_eq!(stages.first(), Some(&(zipdeploy_stage::Fetch as c_int)));
            assert!(stages.contains(&(zipdeploy_stage::Extract as c_int)));
            assert_eq!(stages.last(), Some(&(zipdeploy_stage::Install as c_int)));
            assert!(
                seen.reentry.iter().all(|s| *s == ZIPDEPLOY_BUSY),
                "{:?}",
                seen.reentry
            );

            seen.events.clear();
            seen.cancel_at = 1;
            assert_eq!(
                zipdeploy_deploy_set_url(d, cs(pkg2.to_str().unwrap()).as_ptr()),
                ZIPDEPLOY_OK
            );
            assert_eq!(
                zipdeploy_deploy_run(d, std::ptr::null_mut(), std::ptr::null_mut()),
                ZIPDEPLOY_CANCELLED
            );
            assert_eq!(seen.events.len(), 1);
            assert_eq!(text(zipdeploy_deploy_last_error(d)), "deploy cancelled");
            assert_eq!(std::fs::read(dest.join("VERSION")).unwrap(), b"1");

            // Removing the callback: the deploy goes through.
            assert_eq!(
                zipdeploy_deploy_set_progress(d, None, std::ptr::null_mut()),
                ZIPDEPLOY_OK
            );
            assert_eq!(
                zipdeploy_deploy_run(d, std::ptr::null_mut(), std::ptr::null_mut()),
                ZIPDEPLOY_OK
            );
            assert_eq!(std::fs::read(dest.join("VERSION")).unwrap(), b"2");
            zipdeploy_deploy_free(d);
        }
    }

    /// Userdata of `record_thread`: the threads the callback ran on.
    struct Threads(std::sync::Mutex<Vec<thread::ThreadId>>);

    unsafe extern "C" fn record_thread(
        userdata: *mut c_void,
        _: *const zipdeploy_progress,
    ) -> c_int {
        // SAFETY: the test passes a `&Threads` that outlives every call.
        let threads = unsafe { &*userdata.cast::<Threads>() };
        threads.0.lock().unwrap().push(thread::current().id());
        0
    }

    #[test]
    fn the_callback_runs_only_on_the_thread_that_runs_the_deploy() {
        let threads = Threads(std::sync::Mutex::new(Vec::new()));
        let callback = Callback {
            f: record_thread,
            userdata: (&raw const threads).cast_mut().cast(),
        };
        let mut sink = callback.on_this_thread();
        let event = Progress::bytes(Stage::Fetch, 1, None);
        assert_eq!(sink(&event), ControlFlow::Continue(()));
        // The sink is `Send`: a pipeline may move it to, or call it from,
        // another thread. The C callback is not called there.
        let mut sink = thread::spawn(move || {
            assert_eq!(sink(&event), ControlFlow::Continue(()));
            sink
        })
        .join()
        .unwrap();
        assert_eq!(sink(&event), ControlFlow::Continue(()));
        let here = thread::current().id();
        assert_eq!(*threads.0.lock().unwrap(), vec![here, here]);
    }
}
