//! Who an HTTP request is: the same users as the Redis protocol's (`acl.rs`).
//!
//! A request names its user with `Authorization: Basic` (user and password) or `Authorization:
//! Bearer <token>`, where the token is one an admin made with `ACL TOKEN <user>`: a random
//! password of that user, spelled `mt_<user in hex>_<64 hex digits>` so that it names its user
//! (kept, like every password, as a SHA-256 digest, replicated with the user, revoked with
//! `ACL SETUSER <user> <<token>`). Without credentials a request is the default user, which
//! may do anything only on a node without a password, as with the Redis protocol.
//!
//! No or wrong credentials: `401` with `WWW-Authenticate`. A user without the right a route
//! needs: `403`. Each route needs what the Redis command that tells the same needs (`INFO`
//! for the status and the metrics); `/metrics` is open to anyone with `--metrics-public`.

use crate::Shared;
use crate::acl::{DEFAULT_USER, hex};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use std::sync::Arc;

/// What a token starts with.
const TOKEN_PREFIX: &str = "mt_";

/// A new bearer token for `user`.
pub fn new_token(user: &str) -> String {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).expect("the OS has randomness");
    format!("{TOKEN_PREFIX}{}_{}", hex(user.as_bytes()), hex(&secret))
}

/// The user a token names.
fn token_user(token: &str) -> Option<String> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (user, _) = rest.split_once('_')?;
    if user.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..user.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(user.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// The user and password a request's `Authorization` header gives; `Err` if it is malformed.
fn credentials(request: &Request) -> Result<Option<(String, Vec<u8>)>, ()> {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?;
    let (scheme, rest) = value.trim().split_once(' ').ok_or(())?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| ())?;
        let colon = decoded.iter().position(|&b| b == b':').ok_or(())?;
        let user = String::from_utf8(decoded[..colon].to_vec()).map_err(|_| ())?;
        return Ok(Some((user, decoded[colon + 1..].to_vec())));
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        let user = token_user(rest).ok_or(())?;
        return Ok(Some((user, rest.as_bytes().to_vec())));
    }
    Err(())
}

fn unauthorized() -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        "log in: Authorization: Basic (a user and its password) or Bearer (a token from ACL TOKEN)\n",
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Basic realm="meridian", charset="UTF-8""#),
    );
    response.headers_mut().append(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer realm="meridian""#),
    );
    response
}

/// Who a request logged in as (for the routes that check the user's rights themselves).
#[derive(Clone)]
pub struct User(pub String);

/// Lets a request through if its user may see what the route shows; answers 401 or 403
/// otherwise. The time series routes (`/v1/ts/...`) check the user's rights on their key
/// themselves, as commands do.
pub async fn require(
    State(shared): State<Arc<Shared>>,
    mut request: Request,
    next: Next,
) -> Response {
    if request.uri().path() == "/metrics" && shared.config.metrics_public {
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "?".to_string(), |c| c.0.to_string());
    let user = match credentials(&request) {
        Err(()) => return unauthorized(),
        Ok(None) if shared.users.open() => DEFAULT_USER.to_string(),
        Ok(None) => return unauthorized(),
        Ok(Some((user, password))) => match shared.users.login(user.as_bytes(), &password) {
            Ok(()) => user,
            Err(_) => {
                tracing::info!(%peer, "refused an HTTP login");
                metrics::counter!("meridian_auth_failures_total").increment(1);
                shared
                    .users
                    .log_login(user.as_bytes(), format!("addr={peer} http"));
                return unauthorized();
            }
        },
    };
    if request.uri().path().starts_with("/v1/ts/") {
        request.extensions_mut().insert(User(user));
        return next.run(request).await;
    }
    let spec = crate::cmd::lookup(b"INFO").expect("INFO is a command");
    if let Err(denied) = shared
        .users
        .check(&user, spec, &[Bytes::from_static(b"INFO")])
    {
        shared
            .users
            .log_refusal(&denied, false, &user, format!("addr={peer} http"));
        return (StatusCode::FORBIDDEN, format!("{}\n", denied.reply_text())).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_user_and_nothing_else_does() {
        let token = new_token("alice.ops");
        assert_eq!(token_user(&token).as_deref(), Some("alice.ops"));
        assert_eq!(token.len(), 3 + 2 * "alice.ops".len() + 1 + 64);
        assert_eq!(token_user("mt_zz_00"), None);
        assert_eq!(token_user("abc"), None);
        assert_eq!(token_user("mt_616_00"), None);
    }
}
