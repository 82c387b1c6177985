//! `[telemetry]`: where traces are exported over OTLP/HTTP, validated here; the spans and
//! their exporter are `crate::telemetry`'s.

use super::raw::RawTelemetry;
use super::{Checker, Secret};
use std::time::Duration;

/// The path OTLP/HTTP receivers take traces on, appended to an endpoint without a path.
pub const TRACES_PATH: &str = "/v1/traces";
/// `service.name` when the config does not say.
pub const DEFAULT_SERVICE_NAME: &str = "gitauto";
/// How long one export request may take when the config does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// `[telemetry]` with an `otlp_endpoint`: traces are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Telemetry {
    /// The full URL spans are posted to (with `/v1/traces` when the config named no path).
    pub endpoint: String,
    /// Headers sent with every export (a collector's API key); never logged.
    pub headers: Vec<(String, Secret)>,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// How long one export request may take before it counts as failed.
    pub timeout: Duration,
}

impl Checker<'_> {
    /// Validates `[telemetry]`; none when it has no `otlp_endpoint` (tracing off).
    pub(super) fn telemetry(&mut self, raw: RawTelemetry) -> Option<Telemetry> {
        let Some(written) = raw.otlp_endpoint else {
            if let Some((name, _)) = raw.headers.iter().next() {
                self.problem(Some(name.span()), "`[telemetry] headers` without `otlp_endpoint`: nothing is exported");
            }
            return None;
        };
        let text = self.expand(&written)?;
        let endpoint = match endpoint(&text) {
            Ok(endpoint) => endpoint,
            Err(why) => {
                self.problem(Some(written.span()), format!("`[telemetry] otlp_endpoint`: {why}"));
                return None;
            }
        };
        let mut headers = Vec::new();
        for (name, value) in &raw.headers {
            let valid_name = reqwest::header::HeaderName::from_bytes(name.get_ref().as_bytes()).is_ok();
            if !valid_name {
                self.problem(
                    Some(name.span()),
                    format!("`[telemetry] headers`: `{}` is not a header name", name.get_ref()),
                );
                continue;
            }
            let Some(expanded) = self.expand(value) else { continue };
            if reqwest::header::HeaderValue::from_str(&expanded).is_err() {
                // The value may be a secret: named by its header only.
                self.problem(
                    Some(value.span()),
                    format!("`[telemetry] headers`: the value of `{}` is not a valid header value", name.get_ref()),
                );
                continue;
            }
            headers.push((name.get_ref().to_ascii_lowercase(), Secret::new(expanded)));
        }
        let service_name = match &raw.service_name {
            None => DEFAULT_SERVICE_NAME.to_owned(),
            Some(name) if name.get_ref().trim().is_empty() => {
                self.problem(Some(name.span()), "`[telemetry] service_name` cannot be empty");
                DEFAULT_SERVICE_NAME.to_owned()
            }
            Some(name) => name.get_ref().clone(),
        };
        let timeout = match &raw.timeout {
            None => DEFAULT_TIMEOUT,
            Some(value) => match self.duration(value) {
                Some(timeout) if !timeout.is_zero() => timeout,
                Some(_) => {
                    self.problem(Some(value.span()), "`[telemetry] timeout` must be more than 0 s");
                    DEFAULT_TIMEOUT
                }
                None => DEFAULT_TIMEOUT,
            },
        };
        Some(Telemetry { endpoint, headers, service_name, timeout })
    }
}

/// The URL spans are posted to: `text` when it names a path, else `text` + `/v1/traces`
/// (as `OTEL_EXPORTER_OTLP_ENDPOINT` is read).
fn endpoint(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|err| format!("{text:?} is not a URL ({err})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{text:?} must be an http:// or https:// URL (OTLP/HTTP; the gRPC port 4317 is not supported, use 4318)",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} names no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials go in `[telemetry] headers`, not in the URL".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} has a query or fragment; give the collector's URL only"));
    }
    // The URL parser gives an http URL without a path the path `/`.
    if url.path() == "/" {
        let mut url = url;
        url.set_path(TRACES_PATH);
        return Ok(url.to_string());
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::endpoint;

    #[test]
    fn endpoints_without_a_path_get_the_traces_path() {
        let table = [
            ("http://collector:4318", Ok("http://collector:4318/v1/traces")),
            ("http://collector:4318/", Ok("http://collector:4318/v1/traces")),
            ("https://otlp.example/custom/traces", Ok("https://otlp.example/custom/traces")),
            ("http://127.0.0.1:4318/v1/traces", Ok("http://127.0.0.1:4318/v1/traces")),
        ];
        for (text, expected) in table {
            assert_eq!(endpoint(text).as_deref(), expected.map_err(|_: ()| String::new()).as_deref(), "{text}");
        }
    }

    #[test]
    fn bad_endpoints_say_why() {
        let table = [
            ("collector:4318", "must be an http:// or https:// URL"),
            ("grpc://collector:4317", "must be an http:// or https:// URL"),
            ("not a url", "is not a URL"),
            ("http://user:pw@collector:4318", "credentials go in `[telemetry] headers`"),
            ("http://collector:4318/v1/traces?x=1", "has a query"),
        ];
        for (text, why) in table {
            let err = endpoint(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
