//! One module per subcommand: each turns its arguments into engine calls (or checkpoint
//! reads) and prints the outcome; errors go back to `main` to become one line.

pub mod checkpoint;
pub mod files;
pub mod notifications;
pub mod run;
pub mod schema;
pub mod table;
pub mod validate;

/// `println!` that returns the write's error instead of panicking: a closed output pipe
/// (`inlet files | head -1`) ends the command quietly (see `main`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)
    }};
}
pub(crate) use out;
