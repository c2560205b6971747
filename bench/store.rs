//! Raw storage baseline: the same upserts as the HTTP benchmark, in a loop straight through
//! the `Store` trait (no HTTP, no JSON, no auth), so the HTTP numbers can be read against what
//! the storage layer itself can do on this machine.
//!
//! `cargo bench --bench store`   (MySQL too with BENCH_MYSQL_URL or TEST_MYSQL_URL set)

use std::time::{Duration, Instant};

use sellerdesk::domain::{Actor, Asin, InventoryInput, Marketplace, SellerId, SellerSku, Units};
use sellerdesk::store::{self, Store, StoreOptions};

const KEYS: u32 = 10_000;
const SINGLE_ROUNDS: u32 = 20_000;
const BATCHES: u32 = 300;
/// Batches written by the 64 concurrent tasks, as the HTTP benchmark's (d) issues them.
const CONCURRENT_BATCHES: u32 = 1_280;
const CONCURRENCY: u32 = 64;

fn item(n: u32, stock: u32) -> InventoryInput {
    InventoryInput {
        seller_id: SellerId::parse("A1SELLER0001").unwrap(),
        parent_asin: Asin::parse("B0PARENT0001").unwrap(),
        child_asin: Asin::parse("B0CHILD00001").unwrap(),
        seller_sku: SellerSku::parse(&format!("SKU{n:010}")).unwrap(),
        market_place_id: Marketplace::parse("US").unwrap(),
        inventory: Units::parse(i64::from(stock)).unwrap(),
    }
}

/// A small deterministic generator, so both backends see the same key sequence.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u32) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % u64::from(below)) as u32
    }
}

fn per_second(count: u32, elapsed: Duration) -> f64 {
    f64::from(count) / elapsed.as_secs_f64()
}

async fn run(label: &str, url: &str) {
    let store = store::connect(&StoreOptions {
        url: url.to_owned(),
        max_connections: Some(8),
        acquire_timeout: Duration::from_secs(30),
        durability: Default::default(),
    })
    .await
    .expect("the benchmark database opens");
    for start in (0..KEYS).step_by(100) {
        let batch: Vec<_> = (start..start + 100).map(|n| item(n, n)).collect();
        store
            .upsert_inventories(batch, &Actor::system())
            .await
            .expect("seed");
    }

    let mut rng = Lcg(42);
    let started = Instant::now();
    for round in 0..SINGLE_ROUNDS {
        store
            .upsert_inventory(&item(rng.next(KEYS), round), &Actor::system())
            .await
            .expect("upsert");
    }
    let single = per_second(SINGLE_ROUNDS, started.elapsed());

    // The same single-row upserts from 64 concurrent tasks, as the HTTP benchmark's 64
    // connections issue them: what the storage layer can do under that load.
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|t| {
            let store: std::sync::Arc<dyn Store> = std::sync::Arc::clone(&store);
            // (`store::connect` already returns an `Arc<dyn Store>`.)
            tokio::spawn(async move {
                let mut rng = Lcg(u64::from(t));
                for round in 0..SINGLE_ROUNDS / CONCURRENCY {
                    store
                        .upsert_inventory(&item(rng.next(KEYS), round), &Actor::system())
                        .await
                        .expect("upsert");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a bench task");
    }
    let concurrent = per_second(SINGLE_ROUNDS / CONCURRENCY * CONCURRENCY, started.elapsed());

    let started = Instant::now();
    for round in 0..BATCHES {
        let first = rng.next(KEYS - 100);
        let batch: Vec<_> = (first..first + 100).map(|n| item(n, round)).collect();
        store
            .upsert_inventories(batch, &Actor::system())
            .await
            .expect("batch");
    }
    let batched = per_second(BATCHES * 100, started.elapsed());

    // The same batches from 64 concurrent tasks, as the HTTP benchmark's (d) sends them: the
    // most the storage layer can write this way, with no HTTP, JSON or auth in front of it.
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|t| {
            let store = std::sync::Arc::clone(&store);
            tokio::spawn(async move {
                let mut rng = Lcg(u64::from(t) + 1_000);
                for _ in 0..CONCURRENT_BATCHES / CONCURRENCY {
                    let first = rng.next(KEYS - 100);
                    // Random levels, as (d) sends: a row that already says this is not written.
                    let stock = rng.next(100_000);
                    let batch: Vec<_> = (first..first + 100).map(|n| item(n, stock)).collect();
                    store
                        .upsert_inventories(batch, &Actor::system())
                        .await
                        .expect("batch");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a bench task");
    }
    let batched_concurrent = per_second(
        CONCURRENT_BATCHES / CONCURRENCY * CONCURRENCY * 100,
        started.elapsed(),
    );

    let started = Instant::now();
    for _ in 0..SINGLE_ROUNDS {
        store
            .get_inventory(i64::from(rng.next(KEYS) + 1))
            .await
            .expect("get");
    }
    let reads = per_second(SINGLE_ROUNDS, started.elapsed());
    store.close().await;
    println!(
        "{label}: single-row upserts {single:.0} rows/s sequential, {concurrent:.0} rows/s from {CONCURRENCY} tasks; \
         100-row batches {batched:.0} rows/s sequential, {batched_concurrent:.0} rows/s from {CONCURRENCY} tasks; \
         get by id {reads:.0} rows/s sequential"
    );
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    run(
        "SQLite",
        &format!("sqlite://{}", dir.path().join("store-bench.db").display()),
    )
    .await;
    let mysql = std::env::var("BENCH_MYSQL_URL").or_else(|_| std::env::var("TEST_MYSQL_URL"));
    if let Ok(server) = mysql.map(|u| {
        u.rsplit_once('/')
            .map(|(base, _)| base.to_owned())
            .unwrap_or(u)
    }) {
        use sqlx::Connection;
        let name = "sellerdesk_store_bench";
        let mut admin = sqlx::MySqlConnection::connect(&format!("{server}/"))
            .await
            .expect("MySQL server");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"))
            .execute(&mut admin)
            .await
            .unwrap();
        run("MySQL", &format!("{server}/{name}")).await;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}
