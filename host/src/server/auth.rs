//! The API's, dashboard's and metrics' authentication: when `[server] api_token` is set,
//! a request must carry it as a bearer token (`Authorization: Bearer TOKEN`) or as the
//! password of basic authentication (any user name), which is what browsers prompt for.
//! Webhook endpoints are not behind this: their signatures authenticate them.

use super::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use subtle::ConstantTimeEq;

/// Lets the request through when it carries the token (or none is configured).
pub(super) async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let config = state.config();
    let Some(token) = &config.server.api_token else { return next.run(request).await };
    let offered =
        request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()).and_then(credential);
    let matches = offered.is_some_and(|offered| {
        // Hash both sides so that the comparison time depends on neither length.
        let digest = |text: &[u8]| <sha2::Sha256 as sha2::Digest>::digest(text);
        bool::from(digest(offered.as_bytes()).ct_eq(&digest(token.expose().as_bytes())))
    });
    if matches {
        return next.run(request).await;
    }
    let mut answer = super::error(StatusCode::UNAUTHORIZED, "this endpoint needs the API token ([server] api_token)");
    answer.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"gitauto\""));
    answer.into_response()
}

/// The secret in an `Authorization` value: a bearer token, or a basic password.
fn credential(value: &str) -> Option<String> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        return text.split_once(':').map(|(_, password)| password.to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::credential;

    #[test]
    fn bearer_and_basic_credentials() {
        assert_eq!(credential("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(credential("bearer  abc ").as_deref(), Some("abc"));
        // "admin:s3cret"
        assert_eq!(credential("Basic YWRtaW46czNjcmV0").as_deref(), Some("s3cret"));
        assert_eq!(credential("Basic !!!"), None);
        assert_eq!(credential("Token abc"), None);
        assert_eq!(credential("abc"), None);
    }
}
