//! `http`: one request, to granted hosts only. Redirects are followed by hand so that
//! every hop is checked; DNS names never reach loopback, private or link-local
//! addresses (only a grant that names such an address itself does); bodies are bounded.
//! A granted host's credential (a header, a SigV4 signature: `http/sigv4.rs`, or a GitHub
//! App token minted for the job) is applied to the first hop, and to redirects that
//! never left its origin.

use crate::capability::bindings::gitauto::plugin::http::{self as wit, HttpError, Method, Request, Response};
use crate::capability::meter::Capability;
use crate::capability::{AppTokenError, StepContext, StepState};
use crate::grant::{Credential, Grant, HostCredential, is_public};
use crate::secret::Secret;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

mod sigv4;

/// Redirect hops followed at most.
const MAX_REDIRECTS: usize = 5;
/// Default per-request timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A plugin's HTTP client: connection pool plus the address policy.
pub struct Client {
    inner: reqwest::Client,
}

impl Client {
    /// A client for one plugin.
    pub fn new() -> anyhow::Result<Self> {
        let inner = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(PublicOnlyResolver))
            .user_agent(concat!("gitauto/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .no_proxy()
            .build()?;
        Ok(Self { inner })
    }
}

/// Resolves names, keeping only globally routable addresses: a granted *name* must
/// not lead to the host's loopback, the LAN or a cloud metadata service. Addresses
/// written literally in a URL do not pass through here; the grant checks them.
struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            if host.eq_ignore_ascii_case("localhost") {
                // Reached only when the grant names `localhost` itself.
                let addrs: Box<dyn Iterator<Item = SocketAddr> + Send> =
                    Box::new([SocketAddr::from(([127, 0, 0, 1], 0))].into_iter());
                return Ok(addrs);
            }
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = resolved.iter().copied().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                let shown: Vec<String> = resolved.iter().map(|a| a.ip().to_string()).collect();
                return Err(NonPublicName { host, addresses: shown.join(", ") }.into());
            }
            let addrs: Box<dyn Iterator<Item = SocketAddr> + Send> = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// A name that resolves only to addresses a name may not lead to: the request is
/// denied (not a connection failure), whatever reqwest wraps around it.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to non-public addresses ({addresses}); grant the address itself to reach it")]
struct NonPublicName {
    /// The name asked for.
    host: String,
    /// What it resolved to, for the message.
    addresses: String,
}

/// Headers that frame the request or name its destination: the host writes them from
/// the URL it checked and the body it sends, never from the plugin's.
pub(crate) const HOST_SET: [&str; 4] = ["host", "content-length", "transfer-encoding", "connection"];

/// One request as the policy sees it, from either way a plugin makes one: this
/// module's interface or `wasi:http/outgoing-handler` (`capability/wasi_http.rs`).
/// Everything below [`send`] is the one policy both share.
pub(crate) struct Outgoing {
    /// The method.
    pub method: reqwest::Method,
    /// The URL as the plugin gave it; parsed once, by [`send`].
    pub url: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, if any.
    pub body: Option<Vec<u8>>,
    /// The plugin's own timeout for the whole request (default 30 s; never beyond the
    /// step's deadline).
    pub timeout: Option<Duration>,
}

/// Checks a URL against the grant: scheme, host and port.
fn check_url(grant: &Grant, url: &reqwest::Url) -> Result<(), HttpError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(HttpError::InvalidRequest(format!("`{url}`: only http and https URLs are allowed")));
    }
    let host = url.host_str().ok_or_else(|| HttpError::InvalidRequest(format!("`{url}` has no host")))?;
    let port = url.port_or_known_default().unwrap_or(443);
    grant.check_host(host, port).map_err(|denied| HttpError::Denied(format!("request to {url}: {denied}")))?;
    Ok(())
}

/// The config's credential for the URL's host, if there is one. It is used only over
/// https, or to a loopback address written literally: a header would cross the network
/// in clear, and a signature would be sent for requests anyone on the path could change.
fn credential<'g>(grant: &'g Grant, url: &reqwest::Url) -> Result<Option<&'g HostCredential>, HttpError> {
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else { return Ok(None) };
    let Some(credential) = grant.credential_for(host, port) else { return Ok(None) };
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    };
    if url.scheme() != "https" && !loopback {
        return Err(HttpError::Denied(format!(
            "{url}: the credential granted for {} is sent only over https",
            credential.pattern
        )));
    }
    Ok(Some(credential))
}

/// A header credential as the header to send.
fn header(
    credential: &HostCredential,
    name: &str,
    value: &Secret,
) -> Result<(reqwest::header::HeaderName, reqwest::header::HeaderValue), HttpError> {
    let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| HttpError::InvalidRequest(format!("the credential header `{name}` is invalid")))?;
    let mut value = reqwest::header::HeaderValue::from_str(value.expose()).map_err(|_| {
        HttpError::InvalidRequest(format!("the credential for {} is not a valid header value", credential.pattern))
    })?;
    value.set_sensitive(true);
    Ok((name, value))
}

fn method(method: Method) -> reqwest::Method {
    match method {
        Method::Get => reqwest::Method::GET,
        Method::Head => reqwest::Method::HEAD,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Patch => reqwest::Method::PATCH,
        Method::Delete => reqwest::Method::DELETE,
        Method::Options => reqwest::Method::OPTIONS,
    }
}

/// Sends the request, following redirects that stay on granted hosts; with tracing on,
/// as an `http.request` span under the step's, whose context every hop carries.
pub(crate) fn send(ctx: &StepContext, request: Outgoing) -> Result<Response, HttpError> {
    let Some(step) = &ctx.trace else { return send_traced(ctx, request, None) };
    let mut span = step.child("http.request", crate::telemetry::Kind::Client);
    span.set("http.request.method", request.method.as_str());
    if let Ok(url) = reqwest::Url::parse(&request.url) {
        span.set("url.full", shown_url(&url));
        if let Some(host) = url.host_str() {
            span.set("server.address", host);
        }
    }
    let context = span.context();
    let sent = send_traced(ctx, request, Some(context));
    match &sent {
        Ok(response) => {
            span.set("http.response.status_code", response.status);
            if response.status >= 400 {
                span.fail(format!("status {}", response.status));
            }
        }
        // The kind only: the messages name the whole URL, query and credentials included.
        Err(err) => span.fail(match err {
            HttpError::Denied(_) => "denied by the grant",
            HttpError::InvalidRequest(_) => "invalid request",
            HttpError::Timeout(_) => "timed out",
            HttpError::Connection(_) => "connection failed",
            HttpError::TooLarge(_) => "response too large",
        }),
    }
    sent
}

/// A URL as a span shows it: no credentials, query or fragment (they may hold tokens).
fn shown_url(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// [`send`], with `trace` as every hop's `traceparent` (the host's replaces a plugin's: the
/// host owns the trace, and a plugin's would claim a span that does not exist in it).
fn send_traced(
    ctx: &StepContext,
    request: Outgoing,
    trace: Option<crate::telemetry::TraceContext>,
) -> Result<Response, HttpError> {
    let mut url = reqwest::Url::parse(&request.url)
        .map_err(|err| HttpError::InvalidRequest(format!("`{}` is not a URL: {err}", request.url)))?;
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &request.headers {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| HttpError::InvalidRequest(format!("invalid header name `{name}`")))?;
        if HOST_SET.contains(&name.as_str()) {
            return Err(HttpError::InvalidRequest(format!("header `{name}` is set by the host")));
        }
        let value = reqwest::header::HeaderValue::from_bytes(value)
            .map_err(|_| HttpError::InvalidRequest(format!("invalid value for header `{name}`")))?;
        headers.append(name, value);
    }
    if let Some(trace) = trace {
        let value = reqwest::header::HeaderValue::from_str(&trace.traceparent())
            .expect("a traceparent is hex digits and dashes");
        headers.insert(reqwest::header::HeaderName::from_static("traceparent"), value);
    }
    let requested = request.timeout.unwrap_or(DEFAULT_TIMEOUT);
    // One budget for the whole call, redirects included: each hop gets what is left.
    let ends = std::time::Instant::now() + requested.min(ctx.remaining());
    let mut method = request.method;
    let mut body = request.body;
    let runtime = tokio::runtime::Handle::current();
    // Whether the host's credentials may go on this hop: on the first, and on every hop
    // a redirect reaches without ever leaving the first hop's origin. A server that
    // holds none must not steer the plugin's method and body to one that does (a 307 to
    // a bucket), nor can a redirect lend a credential to the plugin's request.
    let mut credentials_allowed = true;
    for hop in 0..=MAX_REDIRECTS {
        let timeout = ends.saturating_duration_since(std::time::Instant::now());
        if timeout.is_zero() {
            return Err(HttpError::Timeout(if hop == 0 {
                "the step's deadline has passed".into()
            } else {
                format!("{url}: the time for the request ran out after {hop} redirects")
            }));
        }
        check_url(&ctx.grant, &url)?;
        let mut hop_headers = headers.clone();
        let granted = if credentials_allowed { credential(&ctx.grant, &url)? } else { None };
        if let Some(credential) = granted {
            match &credential.kind {
                Credential::Header { name, value } => {
                    // The host's credential replaces whatever the plugin put in that header.
                    let (name, value) = header(credential, name, value)?;
                    hop_headers.insert(name, value);
                }
                Credential::SigV4(key) => {
                    // Signed last, over the URL, headers and body exactly as they are sent
                    // (`sign` puts the URL in the form it signs).
                    let body = body.as_deref().unwrap_or_default();
                    let now = time::OffsetDateTime::now_utc();
                    hop_headers = sigv4::sign(key, method.as_str(), &mut url, &headers, body, now)?;
                }
                Credential::GitHubApp { permissions } => {
                    // Minted for the job's repository and these permissions alone; like a
                    // header credential it replaces the plugin's own.
                    let to = (url.host_str().unwrap_or_default(), url.port_or_known_default().unwrap_or_default());
                    let token = ctx.app_token(&credential.pattern, to, permissions).map_err(|err| match err {
                        AppTokenError::Denied(why) => HttpError::Denied(format!("request to {url}: {why}")),
                        AppTokenError::Unavailable(why) => HttpError::Connection(format!("request to {url}: {why}")),
                    })?;
                    let value = Secret::new(format!("Bearer {}", token.expose()));
                    let (name, value) = header(credential, "authorization", &value)?;
                    hop_headers.insert(name, value);
                }
            }
        }
        let mut builder = ctx.http.inner.request(method.clone(), url.clone()).headers(hop_headers).timeout(timeout);
        if let Some(body) = &body {
            builder = builder.body(body.clone());
        }
        let response = runtime.block_on(builder.send()).map_err(|err| describe(&url, err))?;
        let status = response.status();
        // GitHub no longer takes the app token it minted (revoked, installation changed):
        // the next request mints a new one rather than reuse it until it expires.
        if status == reqwest::StatusCode::UNAUTHORIZED
            && granted.is_some_and(|credential| matches!(credential.kind, Credential::GitHubApp { .. }))
            && let Some(app) = &ctx.app
        {
            app.refused();
        }
        if status.is_redirection()
            && let Some(location) = response.headers().get(reqwest::header::LOCATION)
        {
            if hop == MAX_REDIRECTS {
                return Err(HttpError::Connection(format!("{url}: more than {MAX_REDIRECTS} redirects")));
            }
            let location = location.to_str().unwrap_or_default();
            let next = url
                .join(location)
                .map_err(|err| HttpError::Connection(format!("{url}: bad redirect location `{location}`: {err}")))?;
            check_url(&ctx.grant, &next).map_err(|err| match err {
                HttpError::Denied(why) => HttpError::Denied(format!("redirect from {url} refused: {why}")),
                other => other,
            })?;
            // Leaving the origin (scheme, host or port), the plugin's own credentials stay
            // behind, as browsers do, and the host's go on no later hop.
            if next.origin() != url.origin() {
                headers.remove(reqwest::header::AUTHORIZATION);
                headers.remove(reqwest::header::COOKIE);
                credentials_allowed = false;
            }
            // As browsers do: 303, and 301/302 after a POST, continue as GET without a body.
            if status == reqwest::StatusCode::SEE_OTHER
                || (matches!(status.as_u16(), 301 | 302) && method == reqwest::Method::POST)
            {
                method = reqwest::Method::GET;
                body = None;
            }
            url = next;
            continue;
        }
        return read_response(&runtime, response, ctx.max_transfer, &url);
    }
    unreachable!("the loop returns on its last hop")
}

fn read_response(
    runtime: &tokio::runtime::Handle,
    mut response: reqwest::Response,
    max: u64,
    url: &reqwest::Url,
) -> Result<Response, HttpError> {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let mut body = Vec::new();
    loop {
        match runtime.block_on(response.chunk()) {
            Ok(Some(chunk)) => {
                if (body.len() + chunk.len()) as u64 > max {
                    return Err(HttpError::TooLarge(format!("{url}: the response body exceeds {max} bytes")));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(err) => return Err(describe(url, err)),
        }
    }
    Ok(Response { status, headers, body })
}

fn describe(url: &reqwest::Url, err: reqwest::Error) -> HttpError {
    let mut message = format!("{url}: {err}");
    let mut non_public = false;
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        non_public |= cause.is::<NonPublicName>();
        source = cause.source();
    }
    if err.is_timeout() {
        HttpError::Timeout(message)
    } else if non_public {
        HttpError::Denied(message)
    } else {
        HttpError::Connection(message)
    }
}

impl wit::Host for StepState {
    fn send(&mut self, request: Request) -> wasmtime::Result<Result<Response, HttpError>> {
        let _call = self.ctx.meter.start(Capability::Http, "http.send");
        let request = Outgoing {
            method: method(request.method),
            url: request.url,
            headers: request.headers.into_iter().map(|(name, value)| (name, value.into_bytes())).collect(),
            body: request.body,
            timeout: request.timeout.map(Duration::from_millis),
        };
        Ok(send(&self.ctx, request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_name_that_resolves_only_to_this_machine_is_denied_not_a_failed_connection() {
        // This machine's own name resolves to one of its addresses, none of them public.
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned();
        let url = reqwest::Url::parse(&format!("http://{name}:9/")).unwrap();
        let client = Client::new().unwrap();
        let err = client.inner.get(url.clone()).send().await.unwrap_err();
        match describe(&url, err) {
            HttpError::Denied(message) => {
                assert!(message.contains(&format!("{name} resolves only to non-public addresses (")), "{message}")
            }
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    #[test]
    fn public_addresses() {
        let public = [
            "140.82.112.3",
            "8.8.8.8",
            "192.0.1.1",
            "198.17.0.1",
            "2606:4700::1111",
            "::ffff:140.82.112.3",
            "2001:4860:4860::8888",
            "2001:1::1",
            "2001:3::1",
            "2001:30::1",
            "2003::1",
        ];
        for ip in public {
            assert!(is_public(ip.parse().unwrap()), "{ip} is public");
        }
        let private = [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "CGNAT"),
            ("0.0.0.0", "this network"),
            ("255.255.255.255", "broadcast"),
            ("192.0.0.1", "IETF protocol assignments 192.0.0.0/24"),
            ("192.0.0.170", "NAT64 discovery"),
            ("198.18.0.1", "benchmarking"),
            ("240.0.0.1", "reserved"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00::1", "unique-local"),
            ("fe80::1", "link-local"),
            ("fec0::1", "site-local"),
            ("feff:ffff::1", "site-local, top"),
            ("::ffff:127.0.0.1", "mapped loopback"),
            ("::ffff:169.254.169.254", "mapped link-local"),
            ("::127.0.0.1", "IPv4-compatible"),
            ("::8.8.8.8", "IPv4-compatible, public v4 inside"),
            ("64:ff9b::a00:1", "NAT64 to 10.0.0.1"),
            ("64:ff9b::808:808", "NAT64 to 8.8.8.8: still refused"),
            ("64:ff9b:1::1", "local-use NAT64"),
            ("64:ff9b:1:ffff::1", "local-use NAT64, top"),
            ("2002:a00:1::1", "6to4 of 10.0.0.1"),
            ("2002:808:808::1", "6to4 of a public address: still refused"),
            ("2001::1", "Teredo"),
            ("2001:0:ffff::1", "Teredo, top"),
            ("100::1", "discard-only"),
            ("2001:2::1", "benchmarking"),
            ("2001:2:0:ffff::1", "benchmarking, top"),
            ("2001:20::1", "ORCHIDv2"),
            ("2001:2f:ffff::1", "ORCHIDv2, top"),
            ("2001:db8::1", "documentation"),
            ("ff02::1", "multicast"),
        ];
        for (ip, why) in private {
            assert!(!is_public(ip.parse().unwrap()), "{ip} ({why}) is refused");
        }
    }
}
