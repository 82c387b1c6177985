//! What the server refuses and tells browsers. A page on another site can make a browser
//! send a form POST that carries the dashboard's cached basic credentials, or frame a
//! page to trick clicks on its buttons. So every state-changing request behind the API
//! token must come from this daemon's own pages or from a client that is not a browser
//! (`Sec-Fetch-Site`, `Origin`), and every answer forbids framing. Webhook endpoints are
//! not behind this: forges call them, and their signatures authenticate them.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

/// The framing rule every answer carries, as a CSP directive.
const FRAME_ANCESTORS: &str = "frame-ancestors 'none'";

/// Refuses a state-changing request (any method but GET, HEAD, OPTIONS and TRACE) that a
/// browser sent on behalf of another site, with 403 and the reason.
pub(super) async fn refuse_cross_site(request: Request, next: Next) -> Response {
    if is_safe(request.method()) {
        return next.run(request).await;
    }
    let authority = request.uri().authority().map(|a| a.as_str().to_owned());
    match same_origin(request.headers(), authority.as_deref()) {
        Ok(()) => next.run(request).await,
        Err(why) => {
            tracing::warn!(method = %request.method(), path = %request.uri().path(), "refused: {why}");
            super::error(
                StatusCode::FORBIDDEN,
                format!(
                    "cross-site request refused: {why}; change state from this daemon's own pages, \
                     or from a client that sends no Origin (curl, the gitauto CLI)"
                ),
            )
        }
    }
}

/// Adds `X-Frame-Options: DENY` and `Content-Security-Policy: frame-ancestors 'none'`
/// to every answer (merged into a policy the answer already has).
pub(super) async fn forbid_framing(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let policy = match headers.get(header::CONTENT_SECURITY_POLICY).and_then(|v| v.to_str().ok()) {
        None => HeaderValue::from_static(FRAME_ANCESTORS),
        Some(existing) if existing.to_ascii_lowercase().contains("frame-ancestors") => return response,
        Some(existing) => {
            let merged = format!("{}; {FRAME_ANCESTORS}", existing.trim_end().trim_end_matches(';'));
            HeaderValue::from_str(&merged).unwrap_or_else(|_| HeaderValue::from_static(FRAME_ANCESTORS))
        }
    };
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    response
}

/// Methods that change nothing, by HTTP's rules (and by this server's routes).
fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// Whether a request came from this daemon's own origin, or from a client that says
/// nothing about one. `Sec-Fetch-Site` (sent by browsers since 2020) must be absent,
/// `same-origin` or `none` (typed by the user); an `Origin`, when present, must name the
/// host the request was sent to (`Origin: null`, from sandboxed frames and some
/// redirects, is refused). `authority` is the request URI's, for HTTP/2.
fn same_origin(headers: &HeaderMap, authority: Option<&str>) -> Result<(), String> {
    if let Some(site) = headers.get("sec-fetch-site") {
        match site.to_str() {
            Ok("same-origin" | "none") => {}
            Ok(site) => return Err(format!("the browser says it came from a {site} page (Sec-Fetch-Site)")),
            Err(_) => return Err("its Sec-Fetch-Site is not text".into()),
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let Ok(origin) = origin.to_str() else { return Err("its Origin is not text".into()) };
    if origin == "null" {
        return Err("it came from an opaque origin (Origin: null)".into());
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).or(authority);
    let Some(host) = host else { return Err(format!("it names no host to compare its Origin `{origin}` with")) };
    let origin_host = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    if origin_host.is_some_and(|origin_host| origin_host.eq_ignore_ascii_case(host)) {
        Ok(())
    } else {
        Err(format!("it came from `{origin}`, not from `{host}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn only_requests_from_this_origin_or_without_one_pass() {
        let host = ("host", "127.0.0.1:8080");
        let allowed: &[&[(&str, &str)]] = &[
            &[host],
            &[host, ("origin", "http://127.0.0.1:8080")],
            &[("host", "gitauto.example.com"), ("origin", "https://gitauto.example.com")],
            &[("host", "GitAuto.Example.com"), ("origin", "https://gitauto.example.com")],
            &[host, ("origin", "http://127.0.0.1:8080"), ("sec-fetch-site", "same-origin")],
            &[host, ("sec-fetch-site", "same-origin")],
            &[host, ("sec-fetch-site", "none")],
        ];
        for pairs in allowed {
            assert_eq!(same_origin(&headers(pairs), None), Ok(()), "{pairs:?}");
        }
        let refused: &[(&[(&str, &str)], &str)] = &[
            (&[host, ("origin", "http://evil.example")], "came from `http://evil.example`"),
            (&[host, ("origin", "http://127.0.0.1:8081")], "not from `127.0.0.1:8080`"),
            (&[host, ("origin", "http://127.0.0.1:8080.evil.example")], "not from"),
            (&[host, ("origin", "http://evil.example/127.0.0.1:8080")], "not from"),
            (&[host, ("origin", "ftp://127.0.0.1:8080")], "not from"),
            (&[host, ("origin", "null")], "Origin: null"),
            (&[host, ("sec-fetch-site", "cross-site")], "cross-site page"),
            (&[host, ("sec-fetch-site", "same-site")], "same-site page"),
            (&[host, ("origin", "http://127.0.0.1:8080"), ("sec-fetch-site", "cross-site")], "cross-site"),
            (&[("origin", "http://127.0.0.1:8080")], "names no host"),
        ];
        for (pairs, why) in refused {
            let err = same_origin(&headers(pairs), None).expect_err(why);
            assert!(err.contains(why), "{pairs:?}: {err} (want {why:?})");
        }
        // HTTP/2 carries the host in the request URI, not in a Host header.
        assert_eq!(same_origin(&headers(&[("origin", "https://h.example")]), Some("h.example")), Ok(()));
    }

    #[test]
    fn only_changing_methods_are_checked() {
        for method in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(is_safe(&method), "{method}");
        }
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::CONNECT] {
            assert!(!is_safe(&method), "{method}");
        }
    }
}
