//! The HTTP test suite: one binary, one module per area. Every test listed in a
//! `backend_tests!(...)` runs on SQLite and on MySQL/MariaDB; the MySQL ones are reported as
//! ignored unless `TEST_MYSQL_URL` was set when the suite was built (see `build.rs`); the
//! Redis ones (`shared_limits`) likewise with `TEST_REDIS_URL`.

mod helpers;
mod process;
mod raw_http;

mod audit;
mod auth;
mod batch;
mod binary;
mod conditional;
mod connections;
mod contention;
mod events;
mod expiry;
mod http;
mod idempotency;
mod instances;
mod inventory;
mod ledger;
mod metrics;
mod outage;
mod protected;
mod rbac;
mod reservations;
mod sales;
mod sessions;
mod shared_limits;
mod stock;
mod sync;
mod tls;
mod webhooks;
mod write_groups;
