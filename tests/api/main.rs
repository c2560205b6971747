//! The HTTP test suite: one binary, one module per area. Every test in a `backend_tests!`
//! block runs on SQLite and, when `TEST_MYSQL_URL` is set, on MySQL/MariaDB.

mod helpers;

mod auth;
mod batch;
mod binary;
mod http;
mod inventory;
mod outage;
mod protected;
mod rbac;
mod sales;
mod tls;
