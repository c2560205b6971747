//! The write queue: how groups are formed, and what a failing or panicking job does.

use std::time::Duration;

use super::*;

/// A job's answer, kept alive by the test (a job without one is dropped as abandoned).
type Kept = Box<dyn std::any::Any + Send>;

/// An operation job that does nothing.
fn noop() -> (Job, Kept) {
    let (reply, answer) = oneshot::channel::<Answered<()>>();
    let job = Job::Operation(Box::new(Pending {
        args: (),
        operation: |_, _| Box::pin(async { Ok(()) }),
        output: None,
        reply,
    }));
    (job, Box::new(answer))
}

/// An inventory upsert job of rows with these SKU numbers.
fn upsert(skus: &[u32]) -> (Job, Kept) {
    let rows = skus
        .iter()
        .map(|n| Encoded::new(inventory(*n)).unwrap())
        .collect();
    let (reply, answer) = oneshot::channel();
    let job = Job::Inventory(Upserts {
        rows,
        actor: Actor::system(),
        stored: Vec::new(),
        reply,
    });
    (job, Box::new(answer))
}

/// The jobs made by `make`, queued, and their answers.
fn queue(made: Vec<(Job, Kept)>) -> (VecDeque<Job>, Vec<Kept>) {
    let (jobs, kept): (Vec<_>, Vec<_>) = made.into_iter().unzip();
    (jobs.into(), kept)
}

/// An inventory row of `sku` (seller A1SELLER0001, US), 1 unit on hand.
pub(in crate::store::sqlite) fn inventory(sku: u32) -> InventoryInput {
    use crate::domain::{Asin, Marketplace, SellerId, SellerSku, Units};
    InventoryInput {
        seller_id: SellerId::parse("A1SELLER0001").unwrap(),
        parent_asin: Asin::parse("B0PARENT0001").unwrap(),
        child_asin: Asin::parse("B0CHILD00001").unwrap(),
        seller_sku: SellerSku::parse(&format!("SKU{sku:010}")).unwrap(),
        market_place_id: Marketplace::parse("US").unwrap(),
        inventory: Units::parse(1).unwrap(),
    }
}

/// The SKU numbers of each upsert job in `jobs` (operations show as `[]`).
fn skus(jobs: &[Job]) -> Vec<Vec<u32>> {
    jobs.iter()
        .map(|job| match job {
            Job::Inventory(u) => u
                .rows
                .iter()
                .map(|r| r.row.seller_sku.as_str()[3..].parse().unwrap())
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn groups_have_distinct_keys_and_keep_arrival_order() {
    let (mut pending, _kept) = queue([1, 2, 1, 3, 2, 1].iter().map(|n| upsert(&[*n])).collect());
    assert_eq!(skus(&take_group(&mut pending)), [[1], [2], [3]]);
    assert_eq!(
        skus(pending.make_contiguous()),
        [[1], [2], [1]],
        "the repeats, in order"
    );
    assert_eq!(skus(&take_group(&mut pending)), [[1], [2]]);
    assert_eq!(skus(&take_group(&mut pending)), [[1]]);
    assert!(pending.is_empty());
}

#[test]
fn a_job_sharing_a_key_with_a_waiting_job_waits_behind_it() {
    // [1, 2] clashes on 1 and waits; [2] must not overtake it, [3] may.
    let (mut pending, _kept) = queue(vec![
        upsert(&[1]),
        upsert(&[1, 2]),
        upsert(&[2]),
        upsert(&[3]),
    ]);
    assert_eq!(skus(&take_group(&mut pending)), [vec![1], vec![3]]);
    assert_eq!(skus(pending.make_contiguous()), [vec![1, 2], vec![2]]);
    assert_eq!(skus(&take_group(&mut pending)), [vec![1, 2]]);
    assert_eq!(skus(&take_group(&mut pending)), [vec![2]]);
}

#[test]
fn a_group_holds_at_most_max_rows_but_always_its_first_job() {
    let big: Vec<u32> = (0..MAX_ROWS_PER_GROUP as u32 + 5).collect();
    let half: Vec<u32> = (10_000..10_000 + MAX_ROWS_PER_GROUP as u32 / 2).collect();
    let rest: Vec<u32> = (20_000..20_000 + MAX_ROWS_PER_GROUP as u32 / 2 - 1).collect();
    let (mut pending, _kept) = queue(vec![
        upsert(&big),
        upsert(&half),
        upsert(&rest),
        noop(),
        upsert(&[30_000]),
    ]);
    assert_eq!(skus(&take_group(&mut pending)), [big]);
    let second = take_group(&mut pending);
    assert_eq!(
        skus(&second),
        [half, rest, vec![]],
        "{MAX_ROWS_PER_GROUP} rows fit exactly, an operation counting one"
    );
    assert_eq!(skus(&take_group(&mut pending)), [[30_000]]);
    assert!(pending.is_empty());
}

#[test]
fn a_job_whose_request_is_gone_is_dropped_unwritten() {
    let (first, _a) = upsert(&[1]);
    let (gone, answer) = upsert(&[9]);
    drop(answer);
    let (last, _b) = upsert(&[2]);
    let mut pending: VecDeque<Job> = vec![first, gone, last].into();
    assert_eq!(skus(&take_group(&mut pending)), [[1], [2]]);
    assert!(pending.is_empty());
}

/// A temporary SQLite database and its writer pool.
async fn database() -> (tempfile::TempDir, SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("w.db").display());
    let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options.create_if_missing(true))
        .await
        .unwrap();
    (dir, pool)
}

#[tokio::test]
async fn a_panicking_job_is_answered_unavailable_and_the_queue_goes_on() {
    let (_dir, pool) = database().await;
    let writer = Writer::start(pool, Arc::default());
    let panicked: Result<(), _> = writer
        .run((), |_, _| {
            Box::pin(async { panic!("a bug in an operation") })
        })
        .await;
    assert!(
        matches!(panicked, Err(StoreError::Unavailable)),
        "{panicked:?}"
    );

    let answered = writer
        .run(41, |conn, n| {
            Box::pin(async move {
                let (v,): (i64,) = sqlx::query_as("SELECT ? + 1")
                    .bind(*n)
                    .fetch_one(&mut *conn)
                    .await?;
                Ok(v)
            })
        })
        .await;
    assert_eq!(
        answered.unwrap(),
        42,
        "the restarted task writes the next job"
    );
    assert!(writer.is_running());
}

#[tokio::test]
async fn one_failing_job_fails_alone_and_its_group_is_written() {
    let (_dir, pool) = database().await;
    sqlx::query("CREATE TABLE t (v INTEGER NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let writer = Arc::new(Writer::start(pool.clone(), Arc::default()));
    let insert: Operation<SqliteConnection, i64, ()> = |conn, v| {
        Box::pin(async move {
            sqlx::query("INSERT INTO t (v) VALUES (?)")
                .bind(*v)
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
    };
    let broken: Operation<SqliteConnection, (), ()> = |conn, ()| {
        Box::pin(async move {
            sqlx::query("INSERT INTO no_such_table VALUES (1)")
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
    };
    let (a, b, c) = tokio::join!(
        writer.run(1, insert),
        writer.run((), broken),
        writer.run(2, insert),
    );
    assert!(a.is_ok() && c.is_ok(), "{a:?} {c:?}");
    assert!(matches!(b, Err(StoreError::Db(_))), "{b:?}");
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM t")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 2);
}

/// A reservation of `quantity` units of SKU `sku`.
fn reserve(sku: u32, quantity: i64) -> ReservationOp {
    use crate::domain::{ExternalId, NewReservation, NewReservationItem, ReservationType};
    let row = inventory(sku);
    ReservationOp::Reserve {
        new: NewReservation {
            seller_id: row.seller_id,
            market_place_id: row.market_place_id,
            reservation_type: ReservationType::Cart,
            reference_id: ExternalId::parse("cart-1").unwrap(),
            items: vec![NewReservationItem {
                seller_sku: row.seller_sku,
                quantity,
            }],
            expires_minutes: 15,
        },
        actor: Actor::system(),
    }
}

#[tokio::test]
async fn reservations_of_a_failed_group_are_run_again_one_by_one_with_their_own_answers() {
    let (_dir, pool) = database().await;
    super::super::MIGRATOR.run(&pool).await.unwrap();
    let writer = Writer::start(pool.clone(), Arc::default());
    let mut row = inventory(1);
    row.inventory = crate::domain::Units::parse(12).unwrap();
    writer
        .upsert(vec![Encoded::new(row).unwrap()], &Actor::system())
        .await
        .unwrap();

    let broken: Operation<SqliteConnection, (), ()> = |conn, ()| {
        Box::pin(async move {
            sqlx::query("INSERT INTO no_such_table VALUES (1)")
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
    };
    // Queued together, so (most likely) one group: the broken job fails it, and each job is
    // then written alone. Either way every answer must be its own.
    let (a, b, c, d) = tokio::join!(
        writer.reservation(reserve(1, 5)),
        writer.reservation(reserve(1, 5)),
        writer.run((), broken),
        writer.reservation(reserve(1, 5)),
    );
    assert!(matches!(c, Err(StoreError::Db(_))), "{c:?}");
    let answers = [a.unwrap(), b.unwrap(), d.unwrap()];
    let held: Vec<i64> = answers
        .iter()
        .filter_map(|answer| answer.as_ref().ok().map(|r| r.id))
        .collect();
    assert_eq!(
        held.len(),
        2,
        "12 units hold two reservations of 5: {answers:?}"
    );
    assert!(
        held.iter().all(|id| *id > 0) && held[0] != held[1],
        "{held:?}"
    );
    assert!(answers
        .iter()
        .any(|answer| matches!(answer, Err(crate::domain::StockError::InsufficientItems(_)))));

    let (reserved,): (i64,) = sqlx::query_as("SELECT reserved FROM inventory")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(reserved, 10);
    let stored: Vec<(i64,)> = sqlx::query_as("SELECT id FROM reservations ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    let mut expected = held.clone();
    expected.sort_unstable();
    assert_eq!(
        stored.into_iter().map(|(id,)| id).collect::<Vec<_>>(),
        expected
    );
    let (entries,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM inventory_ledger WHERE type = 'reserve'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(entries, 2);
}

/// An operation job that takes `SLOW` inside the transaction, and its answer.
fn slow() -> (Job, oneshot::Receiver<Answered<()>>) {
    let (reply, answer) = oneshot::channel();
    let job = Job::Operation(Box::new(Pending {
        args: (),
        operation: |_, _| {
            Box::pin(async {
                tokio::time::sleep(SLOW).await;
                Ok(())
            })
        },
        output: None,
        reply,
    }));
    (job, answer)
}

const SLOW: Duration = Duration::from_millis(20);

#[tokio::test]
async fn each_job_learns_when_its_group_began_and_how_long_its_sql_took() {
    let (_dir, pool) = database().await;
    let submitted = Instant::now();
    let (first, first_answer) = slow();
    let (second, second_answer) = slow();
    // Queued for a while before the group starts: that is queue wait, not SQL.
    let waited = Duration::from_millis(30);
    tokio::time::sleep(waited).await;
    let mut conn = pool.acquire().await.unwrap();
    assert!(write_and_answer(&mut conn, vec![first, second]).await);
    for answer in [first_answer, second_answer] {
        let (result, timing) = answer.await.unwrap();
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(timing.jobs, 2, "both jobs were one group");
        assert!(
            timing.began.duration_since(submitted) >= waited,
            "the wait before the group began: {timing:?}"
        );
        assert!(
            timing.sql >= SLOW * 2,
            "the group's transaction ran both operations: {timing:?}"
        );
    }
}
