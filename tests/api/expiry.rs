//! Reservation expiry: a reservation holds its units until `expires_at`, never less, and no
//! more than two seconds after (the sweep runs twice a second); the admin cleanup expires what
//! is overdue at once. A reservation holds for at least a minute, so the tests move its
//! deadline in the database (`TestApp::move_deadline`) rather than wait.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{inventory_body, TestApp};

backend_tests!(
    a_reservation_holds_until_its_deadline_and_expires_within_two_seconds_after,
    cleanup_expires_every_overdue_reservation_at_once,
);

/// A row of `stock` units of SKU0000000001 and a cart reservation of `quantity` of them.
async fn reserved(app: &TestApp, stock: i64, quantity: i64) -> (Value, Value) {
    let row = app
        .post_ok(
            "/api/v1/inventory",
            &inventory_body(json!({"inventory": stock})),
        )
        .await;
    let response = app
        .post(
            "/api/v1/reservations",
            &json!({"seller_id": "A1SELLER0001", "market_place_id": "US",
                "reservation_type": "cart", "reference_id": "cart:expiry",
                "items": [{"seller_sku": "SKU0000000001", "quantity": quantity}]}),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    (row, response.json["data"].clone())
}

async fn row_of(app: &TestApp, row: &Value) -> Value {
    app.get(&format!("/api/v1/inventory/{}", row["id"]))
        .await
        .json["data"]
        .clone()
}

async fn status_of(app: &TestApp, reservation: &Value) -> String {
    let response = app
        .get(&format!("/api/v1/reservations/{}", reservation["id"]))
        .await;
    response.json["data"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn a_reservation_holds_until_its_deadline_and_expires_within_two_seconds_after(app: TestApp) {
    let (row, reservation) = reserved(&app, 10, 4).await;
    let id = reservation["id"].as_i64().unwrap();
    let deadline = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    app.move_deadline(id, deadline).await;

    // Until the deadline, the units stay held (checked again and again, so an early sweep
    // would be seen).
    while chrono::Utc::now() < deadline - chrono::Duration::milliseconds(150) {
        assert_eq!(status_of(&app, &reservation).await, "active");
        assert_eq!(row_of(&app, &row).await["available"], 6);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // By two seconds after it, expired, and the units are available again.
    let limit = Instant::now()
        + (deadline - chrono::Utc::now()).to_std().unwrap_or_default()
        + Duration::from_secs(2);
    loop {
        if status_of(&app, &reservation).await == "expired" {
            break;
        }
        assert!(
            Instant::now() < limit,
            "expired within two seconds of the deadline"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = row_of(&app, &row).await;
    assert_eq!(
        (after["reserved"].clone(), after["available"].clone()),
        (json!(0), json!(10))
    );

    // An expired reservation cannot be released or committed, and says why.
    let release = app
        .request(Method::DELETE, &format!("/api/v1/reservations/{id}"), None)
        .await;
    assert_eq!(release.status, StatusCode::CONFLICT, "{}", release.text);
    assert_eq!(release.json["error_code"], "RESERVATION_EXPIRED");
    let history = app
        .get(&format!(
            "/api/v1/inventory/{}/transactions?type=expire",
            row["id"]
        ))
        .await;
    let entries = history.json["data"]["items"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 1, "{}", history.text);
    assert_eq!(entries[0]["reserved_change"], -4);
    assert_eq!(
        entries[0]["operator_id"],
        Value::Null,
        "the sweep acts for nobody"
    );
    app.assert_books_balance().await;
}

async fn cleanup_expires_every_overdue_reservation_at_once(app: TestApp) {
    let (row, first) = reserved(&app, 10, 3).await;
    let second = app
        .post(
            "/api/v1/reservations",
            &json!({"seller_id": "A1SELLER0001", "market_place_id": "US",
                "reservation_type": "order", "reference_id": "order:expiry",
                "items": [{"seller_sku": "SKU0000000001", "quantity": 2}]}),
        )
        .await
        .json["data"]
        .clone();
    // Overdue, but the sweep has not run yet when cleanup is asked; one still has time.
    let past = chrono::Utc::now() - chrono::Duration::seconds(60);
    app.move_deadline(first["id"].as_i64().unwrap(), past).await;
    let cleanup = app
        .request(Method::POST, "/api/v1/reservations/cleanup", None)
        .await;
    assert_eq!(cleanup.status, StatusCode::OK, "{}", cleanup.text);
    // The sweep may have beaten cleanup to it; between them, exactly this one expired.
    let expired = cleanup.json["data"]["expired_reservations"]
        .as_u64()
        .unwrap();
    assert!(expired <= 1, "{}", cleanup.text);
    assert_eq!(status_of(&app, &first).await, "expired");
    assert_eq!(status_of(&app, &second).await, "active");
    assert_eq!(row_of(&app, &row).await["reserved"], 2);

    let (_, seller_token) = app.seller("seller.cleanup", &["A1SELLER0001"]).await;
    let refused = app
        .request_as(
            Method::POST,
            "/api/v1/reservations/cleanup",
            None,
            Some(&seller_token),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "admins only");
    app.assert_books_balance().await;
}
