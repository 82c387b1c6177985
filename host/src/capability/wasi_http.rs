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
use std::sync::atomic::{AtomicUsize, Ordering};
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
pub const MAX_IN_FLIGHT: usize = 4;

/// Sends a store's `wasi:http` requests through gitauto's HTTP policy, with the step's
/// context (the same one its `http` calls are served from).
pub struct PolicyHooks {
    ctx: StepContext,
    in_flight: Arc<AtomicUsize>,
}

impl PolicyHooks {
    /// Hooks for one step.
    pub fn new(ctx: StepContext) -> Self {
        Self { ctx, in_flight: Arc::default() }
    }
}

/// One request's place among the step's [`MAX_IN_FLIGHT`], given back when it ends.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn take(count: &Arc<AtomicUsize>) -> Option<Self> {
        count.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < MAX_IN_FLIGHT).then_some(n + 1)).ok()?;
        Some(Self(count.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
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

    fn send_request(
        &mut self,
        request: hyper::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Result<Sent, Error>> + Send> {
        drop(fut);
        let ctx = self.ctx.clone();
        let Some(place) = InFlight::take(&self.in_flight) else {
            ctx.log.line(
                Level::Warn,
                &format!("wasi:http: more than {MAX_IN_FLIGHT} requests at once; this one is refused"),
            );
            return Box::new(async { Err(Error::ConnectionLimitReached) });
        };
        Box::new(async move {
            let _place = place;
            // The guest writes the body after handing over the request, so it is read
            // here; a guest that never finishes it, or a slow server, is stopped at the
            // step's deadline (the guest waits in host code, where the epoch cannot reach).
            let left = ctx.remaining();
            match tokio::time::timeout(left, exchange(ctx, request, options)).await {
                Ok(sent) => sent,
                Err(_) => Err(Error::ConnectionTimeout),
            }
        })
    }
}

/// Reads the request's body (bounded as responses are), then sends it through the
/// policy on a blocking thread (the policy's client blocks on the runtime).
async fn exchange(
    ctx: StepContext,
    request: hyper::Request<WasiBody>,
    options: Option<RequestOptions>,
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
    let outgoing = Outgoing {
        method: parts.method,
        url: parts.uri.to_string(),
        headers,
        body: (!bytes.is_empty()).then_some(bytes),
        timeout: options.as_ref().and_then(timeout),
    };
    let sent = tokio::task::spawn_blocking(move || {
        let _call = ctx.meter.start(Capability::Http, "wasi-http.handle");
        let url = outgoing.url.clone();
        let sent = http::send(&ctx, outgoing);
        if let Err(err) = &sent {
            // The standard's error codes carry no text: the step's log says why.
            ctx.log.line(Level::Warn, &format!("wasi:http request to {}: {}", shown(&url), message(err)));
        }
        sent
    })
    .await
    .map_err(|err| Error::InternalError(Some(format!("the request's thread failed: {err}"))))?;
    let response = sent.map_err(error_code)?;
    Ok((to_hyper(response)?, Box::new(async { Ok(()) })))
}

/// The plugin's own limit for the whole request: the sum of its connect and first-byte
/// timeouts when it set any (never beyond the step's deadline, as for `http`).
fn timeout(options: &RequestOptions) -> Option<Duration> {
    match (options.connect_timeout, options.first_byte_timeout) {
        (None, None) => None,
        (connect, first_byte) => Some(connect.unwrap_or_default().saturating_add(first_byte.unwrap_or_default())),
    }
}

/// A URL for the log: no credentials, query or fragment.
fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(url) => http::shown_url(&url),
        Err(_) => "an invalid URL".into(),
    }
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
        HttpError::InvalidRequest(why) => Error::InternalError(Some(why)),
        HttpError::Timeout(_) => Error::HttpResponseTimeout,
        HttpError::Connection(why) => Error::InternalError(Some(why)),
        HttpError::TooLarge(_) => Error::HttpResponseBodySize(None),
    }
}

/// The policy's response (its body already read, and bounded) as wasmtime's.
fn to_hyper(response: Response) -> Result<hyper::Response<WasiBody>, Error> {
    let mut builder = hyper::Response::builder().status(response.status);
    for (name, value) in response.headers {
        builder = builder.header(name, value);
    }
    let body = http_body_util::Full::new(Bytes::from(response.body)).map_err(|never| match never {}).boxed_unsync();
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
        let places: Vec<InFlight> = (0..MAX_IN_FLIGHT).map(|_| InFlight::take(&count).unwrap()).collect();
        assert!(InFlight::take(&count).is_none(), "one more than the bound is refused");
        drop(places);
        assert!(InFlight::take(&count).is_some(), "places come back when requests end");
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
