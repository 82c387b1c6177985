//! `wasi:http/outgoing-handler`: the standard HTTP interface (what `fetch` in
//! JavaScript and other languages' clients are built on), under exactly the policy of
//! gitauto's own `http`. wasmtime's implementation keeps the guest-facing resources
//! (fields, bodies, futures); every request it would send comes here instead, is turned
//! into the [`Outgoing`] request gitauto's `http` makes, and goes through the same
//! [`http::send`]: the grant's hosts, the address rules, redirects checked hop by hop,
//! the step's deadline, the host's credentials. wasmtime's own client is never built.

use crate::capability::StepContext;
use crate::capability::bindings::gitauto::plugin::http::{HttpError, Response};
use crate::capability::http::{self, HOST_SET, Outgoing};
use crate::capability::log::Level;
use crate::capability::meter::Capability;
use bytes::Bytes;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The methods a request may use: those of `gitauto:plugin/http`.
const ALLOWED_METHODS: [hyper::Method; 7] = [
    hyper::Method::GET,
    hyper::Method::HEAD,
    hyper::Method::POST,
    hyper::Method::PUT,
    hyper::Method::PATCH,
    hyper::Method::DELETE,
    hyper::Method::OPTIONS,
];

/// Requests one step may have in flight at once. `gitauto:plugin/http` sends one at a
/// time; `wasi:http` lets a guest start many before waiting on any, and each holds a
/// blocking thread and up to its body's bound of memory until the step's deadline.
pub const MAX_IN_FLIGHT: u64 = 4;

/// Bytes of one write to a request's body that wasmtime buffers (its default is 1 MiB):
/// a body no request was ever sent with holds at most two such chunks.
const BODY_CHUNK: usize = 64 * 1024;

/// Bytes of header fields one `fields` resource may hold (wasmtime's default is
/// 128 KiB, and a step may hold hundreds of them).
pub const FIELD_SIZE_LIMIT: usize = 32 * 1024;

/// Sends a store's `wasi:http` requests through gitauto's HTTP policy, with the step's
/// context (the same one its `http` calls are served from).
pub struct PolicyHooks {
    ctx: StepContext,
    in_flight: Arc<AtomicU64>,
    /// Bytes of response bodies the step holds on the host, outside its linear memory
    /// (and so outside its memory limit): bounded by that limit all together.
    held: Arc<AtomicU64>,
}

impl PolicyHooks {
    /// Hooks for one step.
    pub fn new(ctx: StepContext) -> Self {
        Self { ctx, in_flight: Arc::default(), held: Arc::default() }
    }
}

/// A share of one of the step's bounded counts (requests in flight, bytes of responses
/// held), given back when dropped.
struct Share {
    count: Arc<AtomicU64>,
    amount: u64,
}

impl Share {
    /// `amount` more of `count`, unless that would pass `limit`.
    fn take(count: &Arc<AtomicU64>, amount: u64, limit: u64) -> Option<Self> {
        count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_add(amount).filter(|&total| total <= limit))
            .ok()?;
        Some(Self { count: count.clone(), amount })
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.count.fetch_sub(self.amount, Ordering::SeqCst);
    }
}

/// A request's answer, and the future wasmtime watches for errors in its body.
type Sent = (hyper::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>);

impl WasiHttpHooks for PolicyHooks {
    /// The host names the destination from the URL it checked, never a `host` header.
    fn set_host_header(&mut self) -> bool {
        false
    }

    /// A request without a scheme is refused rather than guessed.
    fn default_scheme(&mut self) -> Option<hyper::http::uri::Scheme> {
        None
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        BODY_CHUNK
    }

    fn send_request(
        &mut self,
        request: hyper::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Result<Sent, Error>> + Send> {
        drop(fut);
        let ctx = self.ctx.clone();
        let Some(place) = Share::take(&self.in_flight, 1, MAX_IN_FLIGHT) else {
            ctx.log.line(
                Level::Warn,
                &format!("wasi:http: more than {MAX_IN_FLIGHT} requests at once; this one is refused"),
            );
            return Box::new(async { Err(Error::ConnectionLimitReached) });
        };
        let held = self.held.clone();
        Box::new(async move {
            // The guest writes the body after handing over the request, so it is read
            // here; a guest that never finishes it, or a slow server, is stopped at the
            // step's deadline (the guest waits in host code, where the epoch cannot reach).
            let left = ctx.remaining();
            match tokio::time::timeout(left, exchange(ctx, request, options, place, held)).await {
                Ok(sent) => sent,
                Err(_) => Err(Error::HttpResponseTimeout),
            }
        })
    }
}

/// Reads the request's body (bounded as responses are), then sends it through the
/// policy on a blocking thread (the policy's client blocks on the runtime). The place
/// goes with that thread: dropping the response's future does not free it early. A
/// failure is logged here, in the future the guest holds, so a request the guest gave
/// up on (or whose step ended) writes nothing into the job's log later.
async fn exchange(
    ctx: StepContext,
    request: hyper::Request<WasiBody>,
    options: Option<RequestOptions>,
    place: Share,
    held: Arc<AtomicU64>,
) -> Result<Sent, Error> {
    let (parts, mut body) = request.into_parts();
    // The methods `gitauto:plugin/http` offers, no more: no `CONNECT` tunnel through a
    // granted host, no `TRACE`, nothing of the plugin's own invention.
    if !ALLOWED_METHODS.contains(&parts.method) {
        ctx.log.line(Level::Warn, &format!("wasi:http: the method {} is not offered", parts.method));
        return Err(Error::HttpRequestMethodInvalid);
    }
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if (bytes.len() + data.len()) as u64 > ctx.max_transfer {
                return Err(Error::HttpRequestBodySize(Some(bytes.len() as u64 + data.len() as u64)));
            }
            bytes.extend_from_slice(&data);
        }
    }
    let headers = parts
        .headers
        .iter()
        // Framing is the host's: the body's length is what it sends.
        .filter(|(name, _)| !HOST_SET.contains(&name.as_str()))
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    let url = parts.uri.to_string();
    let outgoing = Outgoing {
        method: parts.method,
        url: url.clone(),
        headers,
        body: (!bytes.is_empty()).then_some(bytes),
        timeout: options.as_ref().and_then(timeout),
    };
    let sender = ctx.clone();
    let sent = tokio::task::spawn_blocking(move || {
        let _place = place;
        let _call = sender.meter.start(Capability::Http, "wasi-http.handle");
        http::send(&sender, outgoing)
    })
    .await
    .map_err(|err| Error::InternalError(Some(format!("the request's thread failed: {err}"))))?;
    let response = match sent {
        Ok(response) => response,
        Err(err) => {
            // The standard's error codes carry no text: the step's log says why, with
            // no URL's credentials, query or path.
            ctx.log.line(Level::Warn, &format!("wasi:http request to {}: {}", origin(&url), redact(message(&err))));
            return Err(error_code(err));
        }
    };
    let charge = Share::take(&held, response.body.len() as u64, ctx.max_transfer).ok_or_else(|| {
        ctx.log.line(
            Level::Warn,
            &format!(
                "wasi:http: the responses the step holds unread would pass {} bytes; drop them before sending more",
                ctx.max_transfer
            ),
        );
        Error::HttpResponseBodySize(Some(response.body.len() as u64))
    })?;
    Ok((to_hyper(response, charge)?, Box::new(async { Ok(()) })))
}

/// The plugin's own limit for the whole request: the sum of its connect and first-byte
/// timeouts when it set any (never beyond the step's deadline, as for `http`).
fn timeout(options: &RequestOptions) -> Option<Duration> {
    match (options.connect_timeout, options.first_byte_timeout) {
        (None, None) => None,
        (connect, first_byte) => Some(connect.unwrap_or_default().saturating_add(first_byte.unwrap_or_default())),
    }
}

/// `scheme://host:port` of a URL, for the log: nothing of its path, query or credentials.
fn origin(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(url) => url.origin().ascii_serialization(),
        Err(_) => "an invalid URL".into(),
    }
}

/// A policy message with every URL in it cut to its origin (they may carry tokens in
/// their credentials, query or path).
fn redact(message: &str) -> String {
    let words = message.split(' ').map(|word| {
        let Some(start) = word.find("http://").or_else(|| word.find("https://")) else { return word.to_owned() };
        let rest = &word[start..];
        let end = rest.find([')', '`', '\'', '"', ',']).unwrap_or(rest.len());
        let url = rest[..end].trim_end_matches(':');
        format!("{}{}{}", &word[..start], origin(url), &rest[url.len()..])
    });
    words.collect::<Vec<_>>().join(" ")
}

fn message(err: &HttpError) -> &str {
    match err {
        HttpError::Denied(why)
        | HttpError::InvalidRequest(why)
        | HttpError::Timeout(why)
        | HttpError::Connection(why)
        | HttpError::TooLarge(why) => why,
    }
}

/// The policy's refusal or failure as the standard's error code.
fn error_code(err: HttpError) -> Error {
    match err {
        HttpError::Denied(_) => Error::HttpRequestDenied,
        HttpError::InvalidRequest(why) if why.contains("is not a URL") => Error::HttpRequestUriInvalid,
        HttpError::InvalidRequest(why) => Error::InternalError(Some(redact(&why))),
        HttpError::Timeout(_) => Error::HttpResponseTimeout,
        HttpError::Connection(why) => Error::InternalError(Some(redact(&why))),
        HttpError::TooLarge(_) => Error::HttpResponseBodySize(None),
    }
}

/// A response body that holds its share of the step's [`PolicyHooks::held`] bytes for as
/// long as it lives (read, or dropped unread).
struct Charged {
    body: http_body_util::Full<Bytes>,
    _charge: Share,
}

impl http_body::Body for Charged {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Error>>> {
        let body = std::pin::Pin::new(&mut self.get_mut().body);
        body.poll_frame(cx).map(|frame| frame.map(|frame| frame.map_err(|never| match never {})))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The policy's response (its body already read, and bounded) as wasmtime's.
fn to_hyper(response: Response, charge: Share) -> Result<hyper::Response<WasiBody>, Error> {
    let mut builder = hyper::Response::builder().status(response.status);
    for (name, value) in response.headers {
        builder = builder.header(name, value);
    }
    let body = Charged { body: http_body_util::Full::new(Bytes::from(response.body)), _charge: charge }.boxed_unsync();
    builder
        .body(body)
        .map_err(|err| Error::InternalError(Some(format!("the response could not be handed over: {err}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_has_at_most_its_places_in_flight_and_gets_them_back() {
        let count = Arc::default();
        let places: Vec<Share> = (0..MAX_IN_FLIGHT).map(|_| Share::take(&count, 1, MAX_IN_FLIGHT).unwrap()).collect();
        assert!(Share::take(&count, 1, MAX_IN_FLIGHT).is_none(), "one more than the bound is refused");
        drop(places);
        assert!(Share::take(&count, 1, MAX_IN_FLIGHT).is_some(), "places come back when requests end");
    }

    #[test]
    fn logged_messages_keep_no_url_past_its_origin() {
        let said = "request to https://user:pw@hooks.example.com/T0/B0/secret?token=x: host hooks.example.com:443 \
                    is not granted (error sending request for url (http://10.0.0.5:8080/path?q=1)), `https://a.b/c`";
        assert_eq!(
            redact(said),
            "request to https://hooks.example.com: host hooks.example.com:443 is not granted (error sending request \
             for url (http://10.0.0.5:8080)), `https://a.b`"
        );
        assert_eq!(origin("not a url"), "an invalid URL");
    }

    #[test]
    fn held_bodies_are_bounded_all_together_and_given_back() {
        let held = Arc::default();
        let first = Share::take(&held, 600, 1000).unwrap();
        assert!(Share::take(&held, 600, 1000).is_none(), "two would pass the budget");
        drop(first);
        assert!(Share::take(&held, 1000, 1000).is_some());
    }

    #[test]
    fn the_standard_error_says_what_the_policy_said() {
        assert!(matches!(error_code(HttpError::Denied("not granted".into())), Error::HttpRequestDenied));
        assert!(matches!(error_code(HttpError::Timeout("late".into())), Error::HttpResponseTimeout));
        assert!(
            matches!(error_code(HttpError::Connection("refused".into())), Error::InternalError(Some(why)) if why == "refused")
        );
        let timeouts = RequestOptions {
            connect_timeout: Some(Duration::from_secs(2)),
            first_byte_timeout: Some(Duration::from_secs(3)),
            between_bytes_timeout: None,
        };
        assert_eq!(timeout(&timeouts), Some(Duration::from_secs(5)));
        assert_eq!(timeout(&RequestOptions::default()), None);
    }
}
