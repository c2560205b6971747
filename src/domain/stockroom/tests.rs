//! The stockroom's answers and changes, operation by operation, without a database.

use super::*;
use crate::domain::Precondition;
use crate::domain::{Asin, NewReservationItem, ReservationType, Thresholds};

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_naive_utc(
        chrono::DateTime::from_timestamp(1_800_000_000 + seconds, 0)
            .unwrap()
            .naive_utc(),
    )
}

fn seller() -> SellerId {
    SellerId::parse("A1SELLER0001").unwrap()
}

fn market() -> Marketplace {
    Marketplace::parse("US").unwrap()
}

fn sku(n: i64) -> SellerSku {
    SellerSku::parse(&format!("SKU{n:010}")).unwrap()
}

/// Row `id` with SKU `SKU-<id>`, `on_hand` units and `reserved` of them held.
fn row(id: i64, on_hand: i64, reserved: i64) -> Inventory {
    Inventory {
        id,
        seller_id: seller(),
        parent_asin: Asin::parse("B0PARENT0001").unwrap(),
        child_asin: Asin::parse("B0CHILD00001").unwrap(),
        seller_sku: sku(id),
        market_place_id: market(),
        inventory: Units::parse(on_hand).unwrap(),
        reserved,
        thresholds: Thresholds::default(),
        version: 1,
        create_time: at(0),
        update_time: at(0),
    }
}

fn user(id: i64) -> Actor {
    Actor {
        user_id: Some(id),
        ..Actor::default()
    }
}

fn reserve(items: &[(i64, i64)], by: i64) -> ReservationOp {
    ReservationOp::Reserve {
        new: NewReservation {
            seller_id: seller(),
            market_place_id: market(),
            reservation_type: ReservationType::Cart,
            reference_id: ExternalId::parse("cart-1").unwrap(),
            items: items
                .iter()
                .map(|&(row, quantity)| NewReservationItem {
                    seller_sku: sku(row),
                    quantity,
                })
                .collect(),
            expires_minutes: 15,
        },
        actor: user(by),
    }
}

fn end(id: i64, ending: Ending) -> ReservationOp {
    ReservationOp::End {
        id,
        scope: Scope::All,
        ending,
        precondition: Precondition::default(),
        actor: user(1),
    }
}

/// An active reservation `id` holding `quantity` of row `row`, due at `expires`.
fn held(id: i64, row: i64, quantity: i64, expires: Timestamp) -> Reservation {
    Reservation {
        id,
        seller_id: seller(),
        market_place_id: market(),
        reservation_type: ReservationType::Cart,
        reference_id: ExternalId::parse("cart-1").unwrap(),
        status: ReservationStatus::Active,
        items: vec![ReservationItem {
            inventory_id: row,
            seller_sku: sku(row),
            quantity,
        }],
        expires_at: expires,
        order_id: None,
        created_by: Some(1),
        create_time: at(0),
        update_time: at(0),
    }
}

/// Applies `ops` in order; the answers, and what changed.
fn run<'a>(room: &mut Stockroom<'a>, ops: &'a [ReservationOp]) -> Vec<Answer> {
    ops.iter().map(|op| room.apply(op).unwrap()).collect()
}

#[test]
fn reservations_in_one_run_see_each_others_holds_and_never_oversell() {
    let ops = [
        reserve(&[(1, 6)], 1),
        reserve(&[(1, 6)], 2),
        reserve(&[(1, 4)], 3),
    ];
    let mut room = Stockroom::new(at(10), vec![row(1, 10, 0)], vec![]);
    let answers = run(&mut room, &ops);

    assert_eq!(answers[0].as_ref().unwrap().id, -1);
    assert_eq!(
        answers[1],
        Err(StockError::InsufficientItems(vec![ShortItem {
            index: 0,
            seller_sku: sku(1),
            requested: 6,
            available: 4,
        }]))
    );
    assert_eq!(
        answers[2].as_ref().unwrap().id,
        -2,
        "the refused one took no id"
    );

    let changes = room.into_changes();
    assert_eq!(changes.rows.len(), 1);
    assert_eq!((changes.rows[0].reserved, changes.rows[0].version), (10, 3));
    assert_eq!(changes.created.len(), 2);
    // Each entry starts where the one before it ended.
    let reserved: Vec<(i64, i64)> = changes
        .entries
        .iter()
        .map(|(e, _)| (e.before.reserved, e.before.after(e.movement).reserved))
        .collect();
    assert_eq!(reserved, [(0, 6), (6, 10)]);
    assert_eq!(
        changes.entries[1].1.user_id,
        Some(3),
        "each entry keeps its actor"
    );
}

#[test]
fn a_reservation_is_all_or_nothing() {
    let ops = [reserve(&[(1, 2), (2, 5)], 1)];
    let mut room = Stockroom::new(at(10), vec![row(1, 10, 0), row(2, 4, 0)], vec![]);
    let answers = run(&mut room, &ops);
    assert!(
        matches!(&answers[0], Err(StockError::InsufficientItems(short)) if short[0].index == 1)
    );
    let changes = room.into_changes();
    assert!(changes.rows.is_empty() && changes.entries.is_empty() && changes.created.is_empty());
}

#[test]
fn a_sku_without_a_row_is_named_with_its_index() {
    let ops = [reserve(&[(1, 1), (9, 1)], 1)];
    let mut room = Stockroom::new(at(10), vec![row(1, 10, 0)], vec![]);
    assert_eq!(
        run(&mut room, &ops)[0],
        Err(StockError::SkuNotFound(vec![MissingSku {
            index: 1,
            seller_sku: sku(9),
        }]))
    );
}

#[test]
fn release_and_commit_end_a_reservation_once() {
    let order = ExternalId::parse("order-1").unwrap();
    let ops = [
        end(7, Ending::Commit(order.clone())),
        end(7, Ending::Release),
        end(8, Ending::Release),
    ];
    let mut room = Stockroom::new(at(10), vec![row(1, 10, 3)], vec![held(7, 1, 3, at(1000))]);
    let answers = run(&mut room, &ops);
    let committed = answers[0].as_ref().unwrap();
    assert_eq!(committed.status, ReservationStatus::Committed);
    assert_eq!(committed.order_id, Some(order));
    assert_eq!(answers[1], Err(StockError::ReservationNotActive));
    assert_eq!(answers[2], Err(StockError::ReservationNotFound));

    let changes = room.into_changes();
    assert_eq!(
        (changes.rows[0].inventory.get(), changes.rows[0].reserved),
        (7, 0)
    );
    assert_eq!(changes.ended.len(), 1);
    assert_eq!(changes.entries[0].0.entry_type, LedgerType::Commit);
}

#[test]
fn a_reservation_past_its_time_expires_instead_of_ending_as_asked() {
    let ops = [end(7, Ending::Release)];
    let mut room = Stockroom::new(at(10), vec![row(1, 10, 3)], vec![held(7, 1, 3, at(10))]);
    assert_eq!(run(&mut room, &ops)[0], Err(StockError::ReservationExpired));
    let changes = room.into_changes();
    assert_eq!(changes.ended[0].status, ReservationStatus::Expired);
    assert_eq!(changes.entries[0].0.entry_type, LedgerType::Expire);
    assert_eq!(changes.entries[0].1.user_id, None, "the service expired it");
    assert_eq!(changes.rows[0].reserved, 0);
}

#[test]
fn an_expiry_never_comes_early() {
    let ops = [end(7, Ending::Expire), end(8, Ending::Expire)];
    let mut room = Stockroom::new(
        at(10),
        vec![row(1, 10, 5)],
        vec![held(7, 1, 3, at(11)), held(8, 1, 2, at(10))],
    );
    let answers = run(&mut room, &ops);
    assert_eq!(answers[0], Err(StockError::ReservationNotActive));
    assert_eq!(
        answers[1].as_ref().unwrap().status,
        ReservationStatus::Expired
    );
    assert_eq!(room.into_changes().rows[0].reserved, 3);
}

#[test]
fn a_commit_short_of_units_on_hand_changes_nothing() {
    // The marketplace reported fewer units than are held: the row is oversold.
    let order = ExternalId::parse("order-1").unwrap();
    let ops = [end(7, Ending::Commit(order))];
    let mut room = Stockroom::new(at(10), vec![row(1, 2, 3)], vec![held(7, 1, 3, at(1000))]);
    assert!(matches!(
        run(&mut room, &ops)[0],
        Err(StockError::InsufficientItems(_))
    ));
    let changes = room.into_changes();
    assert!(changes.rows.is_empty() && changes.ended.is_empty() && changes.entries.is_empty());
}

#[test]
fn scope_hides_other_sellers_reservations() {
    let other = SellerId::parse("A1SELLER0002").unwrap();
    let ending = |precondition| ReservationOp::End {
        id: 7,
        scope: Scope::Sellers(vec![other.clone()]),
        ending: Ending::Release,
        precondition,
        actor: user(2),
    };
    let ops = [
        ending(Precondition::default()),
        ending(Precondition::if_match(1)),
    ];
    let mut room = Stockroom::new(at(10), vec![row(1, 10, 3)], vec![held(7, 1, 3, at(1000))]);
    let answers = run(&mut room, &ops);
    assert_eq!(answers[0], Err(StockError::ReservationNotFound));
    assert_eq!(
        answers[1],
        Err(StockError::ReservationNotFound),
        "not found whatever the headers say"
    );
}

#[test]
fn if_match_names_the_version_an_ending_needs() {
    let with = |id, version| ReservationOp::End {
        id,
        scope: Scope::All,
        ending: Ending::Release,
        precondition: Precondition::if_match(version),
        actor: user(1),
    };
    // 7 is active (version 1): a stale "2" is refused, "1" releases it; then "1" is stale.
    // A missing reservation is not found, as without the header.
    let ops = [with(7, 2), with(7, 1), with(7, 1), with(9, 1)];
    let mut room = Stockroom::new(at(10), vec![row(1, 10, 3)], vec![held(7, 1, 3, at(1000))]);
    let answers = run(&mut room, &ops);
    assert_eq!(answers[0], Err(StockError::version_mismatch(Some(1))));
    assert_eq!(answers[1].as_ref().unwrap().version(), 2);
    assert_eq!(answers[2], Err(StockError::version_mismatch(Some(2))));
    assert_eq!(answers[3], Err(StockError::ReservationNotFound));
    assert_eq!(room.into_changes().entries.len(), 1);
}

#[test]
fn a_missing_row_under_an_active_reservation_fails_the_run() {
    let ops = [end(7, Ending::Release)];
    let mut room = Stockroom::new(at(10), vec![], vec![held(7, 1, 3, at(1000))]);
    assert_eq!(room.apply(&ops[0]), Err(MissingRow(1)));
}

#[test]
fn settling_puts_real_ids_everywhere() {
    let ops = [reserve(&[(1, 1)], 1), reserve(&[(1, 1)], 1)];
    let mut room = Stockroom::new(at(10), vec![row(1, 10, 0)], vec![]);
    let answers = run(&mut room, &ops);
    let mut changes = room.into_changes();
    changes.settle(&[40, 41]);
    assert_eq!(
        changes.created.iter().map(|r| r.id).collect::<Vec<_>>(),
        [40, 41]
    );
    assert_eq!(
        changes
            .entries
            .iter()
            .map(|(e, _)| e.notes.reservation_id)
            .collect::<Vec<_>>(),
        [Some(40), Some(41)]
    );
    let settled: Vec<i64> = answers
        .into_iter()
        .map(|a| settle_answer(a, &[40, 41]).unwrap().id)
        .collect();
    assert_eq!(settled, [40, 41]);
}

#[test]
fn wanted_names_every_reservation_and_key_once() {
    let ops = [
        reserve(&[(1, 1), (2, 1)], 1),
        reserve(&[(1, 1)], 1),
        end(7, Ending::Release),
    ];
    let wanted = Wanted::of(&ops.iter().collect::<Vec<_>>());
    assert_eq!(wanted.reservation_ids, BTreeSet::from([7]));
    assert_eq!(wanted.keys.len(), 2);
}

#[test]
fn events_of_a_run_carry_each_row_as_it_was_just_after_its_own_change() {
    let ops = [
        reserve(&[(1, 6)], 1),
        reserve(&[(1, 4), (2, 1)], 2),
        end(7, Ending::Commit(ExternalId::parse("order-1").unwrap())),
    ];
    let mut first = row(1, 10, 0);
    first.thresholds = Thresholds::new(Some(5), Some(2)).unwrap();
    let mut room = Stockroom::new(
        at(10),
        vec![first, row(2, 4, 0), row(3, 5, 2)],
        vec![held(7, 3, 2, at(1000))],
    );
    run(&mut room, &ops);
    let mut changes = room.into_changes();
    changes.settle(&[40, 41]);

    let events = changes.events();
    let seen: Vec<(EventType, serde_json::Value)> = events
        .iter()
        .map(|e| {
            let data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
            (e.event_type, data)
        })
        .collect();
    let kinds: Vec<EventType> = seen.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        kinds,
        [
            EventType::StockReserved,   // row 1: 4 available, ok → warning
            EventType::StockLowWarning, //
            EventType::StockReserved,   // row 1: nothing available
            EventType::StockLowWarning, //
            EventType::StockReserved,   // row 2
            EventType::StockDeducted,   // row 3
        ]
    );
    let numbers: Vec<(i64, i64, i64, i64)> = seen
        .iter()
        .map(|(_, d)| {
            let row = &d["inventory"];
            (
                row["id"].as_i64().unwrap(),
                row["reserved"].as_i64().unwrap(),
                row["version"].as_i64().unwrap(),
                d["reservation"]["id"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        numbers,
        [
            (1, 6, 2, 40),
            (1, 6, 2, 0),
            (1, 10, 3, 41),
            (1, 10, 3, 0),
            (2, 1, 2, 41),
            (3, 0, 2, 7),
        ]
    );
    assert_eq!(seen[1].1["stock_level_before"], "ok");
    assert_eq!(seen[1].1["inventory"]["stock_level"], "warning");
    assert_eq!(seen[3].1["stock_level_before"], "warning");
    assert_eq!(seen[3].1["inventory"]["stock_level"], "out_of_stock");
    assert_eq!(seen[5].1["reservation"]["status"], "committed");
    assert_eq!(seen[5].1["inventory"]["inventory"], 3);
}
