//! What every example's `main` does with the result of its `run`.

use std::error::Error;
use std::io::{self, Write};
use std::process::ExitCode;

/// Success, or `error: ...` (Display, not Debug) on stderr and exit status 1. A reader who
/// stopped reading our output (`| head -1`) is no failure.
pub(crate) fn exit_code(result: Result<(), Box<dyn Error>>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(io::stderr(), "error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The reason in a switchboard error, for clap's "invalid value" message (without the
/// "invalid configuration: " that Display puts before it).
#[allow(dead_code)] // used by the examples that parse switchboard values on the command line
pub(crate) fn reason(e: switchboard::Error) -> String {
    match e {
        switchboard::Error::Config(why) => why,
        other => other.to_string(),
    }
}
