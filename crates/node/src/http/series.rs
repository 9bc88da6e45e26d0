//! Time series over HTTP (issue 16): `POST /v1/ts/{key}` stores readings, `GET /v1/ts/{key}`
//! reads a range. The user (HTTP Basic, as every route) must be allowed `TS.ADD` or
//! `TS.RANGE` on the key, as over RESP.
//!
//! - `POST /v1/ts/{key}[?labels=name=value,name=value]`: the body is what an MQTT payload is
//!   (`mqtt.rs`): a number (the reading now), `{"ts": ms, "value": v}`, or a JSON array of
//!   either. The series is created if absent (with the labels, `DUPLICATE_POLICY LAST`). The
//!   answer, once the readings are stored by the node's fsync policy: `200 {"stored": n}`;
//!   `400` for a body that is no readings (nothing stored), `403` for a user who may not
//!   write the key (nothing stored), `422` with the first error when the node refuses a
//!   reading (a key of another type, a reading older than the retention; the others are
//!   stored).
//! - `GET /v1/ts/{key}?from=&to=&aggregation=&bucket=&status`: `{"samples": [[ts, value],
//!   ...]}` (`from`/`to` default to the first and last; `aggregation` one of `TS.RANGE`'s with
//!   a `bucket` in ms); with `status`, each sample also says `provisional`, `final` or
//!   `revised` (`TS.RANGE ... WITHSTATUS`).

use crate::Shared;
use crate::http::auth::User;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use resp::Reply;
use std::collections::HashMap;
use std::sync::Arc;

fn error(status: StatusCode, text: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": text.into() });
    (status, Json(body)).into_response()
}

/// `POST /v1/ts/{key}`.
pub async fn post(
    State(shared): State<Arc<Shared>>,
    axum::Extension(User(user)): axum::Extension<User>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let Ok(readings) = crate::mqtt::readings(&body, crate::engine::wall_ms()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "the body is no readings: a number, {\"ts\": ms, \"value\": v}, or an array of them",
        );
    };
    let mut labels = Vec::new();
    for pair in query.get("labels").map_or("", String::as_str).split(',') {
        if pair.is_empty() {
            continue;
        }
        let Some((name, value)) = pair.split_once('=') else {
            return error(StatusCode::BAD_REQUEST, "labels are name=value,name=value");
        };
        labels.push(Bytes::from(name.to_string()));
        labels.push(Bytes::from(value.to_string()));
    }
    let key = Bytes::from(key);
    let commands = crate::mqtt::store_readings(&key, &readings, &labels);
    let (spec, args) = &commands[0]; // speaks for them all (see store_readings)
    if let Err(denied) = shared.users.check(&user, spec, args) {
        return error(StatusCode::FORBIDDEN, denied.reply_text());
    }
    match shared.engine.run(commands).await {
        Ok(ran) => match ran.replies.iter().find(|r| r.is_error()) {
            Some(Reply::Error(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, e.clone()),
            _ => Json(serde_json::json!({ "stored": ran.replies.len() })).into_response(),
        },
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the node is stopping"),
    }
}

/// `GET /v1/ts/{key}`.
pub async fn get(
    State(shared): State<Arc<Shared>>,
    axum::Extension(User(user)): axum::Extension<User>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let word = |name: &str, default: &str| {
        Bytes::from(
            query
                .get(name)
                .cloned()
                .unwrap_or_else(|| default.to_string()),
        )
    };
    let mut args = vec![
        Bytes::from_static(b"TS.RANGE"),
        Bytes::from(key),
        word("from", "-"),
        word("to", "+"),
    ];
    let with_status = query.contains_key("status");
    if with_status {
        args.push(Bytes::from_static(b"WITHSTATUS"));
    }
    if let Some(agg) = query.get("aggregation") {
        args.push(Bytes::from_static(b"AGGREGATION"));
        args.push(Bytes::from(agg.clone()));
        args.push(word("bucket", "0"));
    }
    let spec = crate::cmd::lookup(b"ts.range").expect("known");
    if let Err(denied) = shared.users.check(&user, spec, &args) {
        return error(StatusCode::FORBIDDEN, denied.reply_text());
    }
    let reply = match shared.engine.run(vec![(spec, args)]).await {
        Ok(mut ran) => ran.replies.pop(),
        Err(_) => return error(StatusCode::SERVICE_UNAVAILABLE, "the node is stopping"),
    };
    match reply {
        Some(Reply::Array(samples)) => {
            let samples: Vec<serde_json::Value> = samples
                .into_iter()
                .filter_map(|s| match s {
                    Reply::Array(row) => match row.as_slice() {
                        [Reply::Int(t), Reply::Double(v)] => Some(serde_json::json!([t, v])),
                        [Reply::Int(t), Reply::Double(v), Reply::Int(status)] => {
                            let status = ["provisional", "final", "revised"]
                                .get(*status as usize)
                                .copied()
                                .unwrap_or("?");
                            Some(serde_json::json!([t, v, status]))
                        }
                        _ => None,
                    },
                    _ => None,
                })
                .collect();
            Json(serde_json::json!({ "samples": samples })).into_response()
        }
        Some(Reply::Error(e)) if e.contains("does not exist") => error(StatusCode::NOT_FOUND, e),
        Some(Reply::Error(e)) => error(StatusCode::BAD_REQUEST, e),
        _ => error(StatusCode::INTERNAL_SERVER_ERROR, "no answer"),
    }
}
