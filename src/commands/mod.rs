//! One module per subcommand: each turns its arguments into engine calls (or checkpoint
//! reads) and prints the outcome; errors go back to `main` to become one line.

pub mod checkpoint;
pub mod files;
pub mod run;
pub mod schema;
pub mod table;
pub mod validate;
