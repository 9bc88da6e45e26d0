//! Causal tokens over HTTP (issue 15, item 5), as `MERIDIAN TOKEN` and `MERIDIAN WAITFOR` give
//! them over RESP: every answer carries `Meridian-Token`, the version of everything this node
//! had applied when it answered; a request that sends one back is answered only once this node
//! has applied at least that much (waiting up to `Meridian-Wait-Ms`, 1000 ms unless said, at
//! most a minute), else `503` with `Retry-After`, never a stale answer. A token that does not
//! parse is a `400`.

use crate::Shared;
use crate::server::causal::{Reach, parse, reach, token};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;

/// The header carrying a token, both ways.
pub const TOKEN: &str = "meridian-token";
/// The header bounding the wait for a token sent, in ms.
pub const WAIT_MS: &str = "meridian-wait-ms";
/// The wait when the request does not say.
const WAIT_DEFAULT_MS: u64 = 1000;
/// The longest wait a request may ask for.
const WAIT_MAX_MS: u64 = 60_000;

/// The middleware: waits for a token sent, then stamps the answer with this node's token.
pub async fn tokens(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    if let Some(sent) = request.headers().get(TOKEN) {
        let Some(want) = parse(sent.as_bytes()) else {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid Meridian-Token: send back what a Meridian-Token header carried\n",
            );
        };
        let wait_ms = match request.headers().get(WAIT_MS) {
            None => WAIT_DEFAULT_MS,
            Some(v) => match v.to_str().ok().and_then(|v| v.parse::<u64>().ok()) {
                Some(ms) if (1..=WAIT_MAX_MS).contains(&ms) => ms,
                _ => {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        "Meridian-Wait-Ms must be an integer from 1 to 60000\n",
                    );
                }
            },
        };
        match reach(&shared, &want, Duration::from_millis(wait_ms)).await {
            Reach::Done => {}
            Reach::TimedOut | Reach::Stopping => {
                let mut response = refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "this node has not yet applied everything the token names: retry, or ask another node\n",
                );
                (response.headers_mut()).insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
        }
    }
    let mut response = next.run(request).await;
    stamp(&shared, &mut response);
    response
}

fn refuse(status: StatusCode, text: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
}

fn stamp(shared: &Shared, response: &mut Response) {
    if let Ok(value) = HeaderValue::from_str(&token(shared)) {
        response.headers_mut().insert(TOKEN, value);
    }
}
