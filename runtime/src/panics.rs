//! What a caught panic says: its message, where it happened and, when `RUST_BACKTRACE` asks
//! for it (set and not `0`, the rule of the default panic hook), the backtrace — the form in which a panic in a child
//! (a hook, a pool item, a worker's function) travels back to the parent.
//!
//! `catch_unwind` hands over only the payload; the location and the backtrace exist only
//! while the panic hook runs. A child therefore installs [`install_hook`] before any user code:
//! it notes them in a thread-local slot and calls the hook that was there before (so what the
//! child prints is unchanged). [`caught`] takes the note for the payload it was given, checked
//! by the message, so a note left by a panic that was caught elsewhere is never attached to
//! another one. Code in the child that replaces the panic hook gives up the location.

use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::RefCell;
use std::sync::Once;

use serde::{Deserialize, Serialize};

use crate::failure_text::{MAX_FAILURE_MESSAGE, cut};

/// Where a panic happened: the `file:line:column` of the `panic!` (or of the call that
/// panicked, such as an `unwrap`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanicLocation {
    /// The source file, as the compiler named it (relative to the package's root).
    pub file: String,
    /// The line, from 1.
    pub line: u32,
    /// The column, from 1.
    pub column: u32,
}

impl std::fmt::Display for PanicLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A caught panic as it crosses the process boundary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PanicReport {
    /// The panic's text, cut to [`MAX_FAILURE_MESSAGE`] bytes.
    pub(crate) message: String,
    /// Where it happened, when the hook saw it.
    pub(crate) location: Option<PanicLocation>,
    /// The backtrace, when the environment asked for one; cut to the room the message left.
    pub(crate) backtrace: Option<String>,
}

/// What the hook noted about the last panic on this thread.
struct Noted {
    message: Option<String>,
    location: Option<PanicLocation>,
    backtrace: Option<String>,
}

thread_local! {
    static LAST: RefCell<Option<Noted>> = const { RefCell::new(None) };
}

/// Installs the hook that notes each panic's location and backtrace, once per process, in
/// front of the hook that is there.
pub(crate) fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            note(info);
            previous(info);
        }));
    });
}

fn note(info: &std::panic::PanicHookInfo<'_>) {
    // The rule of the default hook, which prints a backtrace on the same condition.
    let wanted = std::env::var_os("RUST_BACKTRACE").is_some_and(|value| value != "0");
    let backtrace = wanted.then(Backtrace::force_capture);
    let backtrace = backtrace
        .filter(|trace| trace.status() == BacktraceStatus::Captured)
        .map(|trace| trace.to_string());
    let noted = Noted {
        message: Some(text_of(info.payload()).to_owned()),
        location: info.location().map(|location| PanicLocation {
            file: location.file().to_owned(),
            line: location.line(),
            column: location.column(),
        }),
        backtrace,
    };
    // A panic inside a `Drop` of the thread-local itself finds it gone: nothing to note.
    let _ = LAST.try_with(|last| last.replace(Some(noted)));
}

/// The report of the panic whose payload `catch_unwind` returned on this thread.
pub(crate) fn caught(payload: &(dyn Any + Send)) -> PanicReport {
    let message = message_of(payload);
    let noted = LAST.try_with(RefCell::take).ok().flatten();
    // The note must be this panic's: the same text (a payload that is not text has none).
    let noted = noted.filter(|noted| noted.message.as_deref().unwrap_or("") == text_of(payload));
    let (location, backtrace) = noted.map_or((None, None), |n| (n.location, n.backtrace));
    fit(PanicReport {
        message,
        location,
        backtrace,
    })
}

/// The text of a panic payload, as the default hook would print it.
pub(crate) fn message_of(payload: &(dyn Any + Send)) -> String {
    match payload.downcast_ref::<&str>() {
        Some(text) => (*text).to_owned(),
        None => match payload.downcast_ref::<String>() {
            Some(text) => text.clone(),
            None => "panic with a non-string payload".to_owned(),
        },
    }
}

fn text_of(payload: &(dyn Any + Send)) -> &str {
    match payload.downcast_ref::<&str>() {
        Some(text) => text,
        None => payload.downcast_ref::<String>().map_or("", String::as_str),
    }
}

/// Cuts the message to [`MAX_FAILURE_MESSAGE`] bytes and the backtrace (its top frames) to
/// the room the message left, so a report always fits where a failure message does.
pub(crate) fn fit(mut report: PanicReport) -> PanicReport {
    report.message = cut(report.message, MAX_FAILURE_MESSAGE);
    if let Some(location) = &mut report.location {
        location.file = cut(std::mem::take(&mut location.file), 1024);
    }
    let room = MAX_FAILURE_MESSAGE.saturating_sub(report.message.len());
    report.backtrace = report
        .backtrace
        .map(|trace| cut(trace, room))
        .filter(|trace| !trace.is_empty());
    report
}

/// ` at file:line:column`, or nothing: the end of a panic's `Display` text.
pub(crate) struct At<'a>(pub(crate) &'a Option<PanicLocation>);

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(location) => write!(f, " at {location}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::{AssertUnwindSafe, catch_unwind};

    #[test]
    fn a_caught_panic_carries_the_location_the_hook_saw() {
        install_hook();
        let line = line!() + 1;
        let payload = catch_unwind(AssertUnwindSafe(|| panic!("at a known place {}", 7)));
        let report = caught(&*payload.unwrap_err());
        assert_eq!(report.message, "at a known place 7");
        let location = report.location.expect("the hook noted the location");
        assert_eq!(location.file, file!());
        assert_eq!(location.line, line);
    }

    #[test]
    fn a_note_of_another_panic_is_not_attached() {
        install_hook();
        let _ = catch_unwind(|| panic!("first"));
        // The note of "first" is still there; a payload with another text does not take it.
        let report = caught(&"second");
        assert_eq!(report.location, None);
    }

    #[test]
    fn a_long_backtrace_is_cut_to_the_room_the_message_left() {
        let report = fit(PanicReport {
            message: "m".repeat(MAX_FAILURE_MESSAGE - 100),
            location: None,
            backtrace: Some("b".repeat(10_000)),
        });
        let trace = report.backtrace.unwrap();
        assert!(trace.starts_with(&"b".repeat(100)));
        assert!(trace.len() < 200, "{}", trace.len());
    }
}
