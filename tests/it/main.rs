//! End-to-end tests: the real `inlet` binary against local landing zones and against S3
//! through `moto_server` on loopback, with tables read back by Python `deltalake`/`polars`.
//! One test binary, modules per capability (as delta-rs does), so it links once.

mod support;

mod campaign;
mod cli_errors;
mod corpus;
mod crash;
mod credentials;
mod deploy;
mod disk;
mod dv;
mod dynamodb;
mod embed;
mod formats;
mod listing;
mod local;
mod lock;
mod maintenance;
mod many;
mod merge;
mod notify;
mod outside;
mod s3;
mod s3_checkpoint;
mod schema;
mod secrets;
mod setup;
mod unity;
