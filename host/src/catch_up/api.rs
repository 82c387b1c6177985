//! The forge APIs catch-up reads: `GET` with the source's credential, a time limit and no
//! redirects; JSON answers of bounded size; the next page from the `Link` header (GitHub,
//! GitLab) or GitLab's `X-Next-Page`. A next page anywhere but under the configured API
//! root is refused, so the credential goes nowhere else.

use anyhow::Context;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use std::time::Duration;

/// How long one request may take, answer included.
const REQUEST_TIME: Duration = Duration::from_secs(30);
/// The largest answer read (a page of 100 deliveries, or one delivery with its payload).
const MAX_ANSWER: usize = 32 << 20;

/// A forge's API, with the credential it expects.
pub(super) struct Api {
    client: reqwest::Client,
    /// The API root, without a trailing `/`.
    root: String,
}

/// One page of a list.
pub(super) struct Page {
    /// Its items.
    pub items: Vec<Value>,
    /// The next page's URL, when there is one.
    pub next: Option<String>,
}

impl Api {
    /// The API at `root`, sending `credential` in `header` (the value as given, e.g.
    /// `Bearer TOKEN`) with every request.
    pub fn new(root: &str, header: &'static str, credential: &str) -> anyhow::Result<Self> {
        let mut value = HeaderValue::from_str(credential).context("the credential is not a valid header value")?;
        value.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(HeaderName::from_static(header), value);
        headers.insert(reqwest::header::ACCEPT, HeaderValue::from_static("application/json"));
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("gitauto/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIME)
            .build()
            .context("building the HTTP client")?;
        Ok(Self { client, root: root.trim_end_matches('/').to_owned() })
    }

    /// `root` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.root)
    }

    /// The JSON answer to `GET url`, and the response headers.
    pub async fn get(&self, url: &str) -> anyhow::Result<(Value, HeaderMap)> {
        if !url.starts_with(&format!("{}/", self.root)) {
            anyhow::bail!("refusing to send the credential to {url}, which is not under the API root {}", self.root);
        }
        let mut response = self.client.get(url).send().await.with_context(|| format!("GET {url}"))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.with_context(|| format!("GET {url}: reading the answer"))? {
            if body.len() + chunk.len() > MAX_ANSWER {
                anyhow::bail!("GET {url}: the answer is larger than {MAX_ANSWER} bytes");
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let message = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|answer| answer.get("message").or_else(|| answer.get("error")).map(Value::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
            anyhow::bail!("GET {url}: {status}: {message}");
        }
        let value = serde_json::from_slice(&body).with_context(|| format!("GET {url}: the answer is not JSON"))?;
        Ok((value, response.headers().clone()))
    }

    /// One page of a list at `url`.
    pub async fn page(&self, url: &str) -> anyhow::Result<Page> {
        let (value, headers) = self.get(url).await?;
        let Value::Array(items) = value else { anyhow::bail!("GET {url}: the answer is not a list") };
        Ok(Page { items, next: next_page(&headers, url) })
    }

    /// Every item of the list at `url`, following at most `max_pages` pages.
    pub async fn all(&self, url: &str, max_pages: usize) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut next = Some(url.to_owned());
        for _ in 0..max_pages {
            let Some(url) = next.take() else { break };
            let page = self.page(&url).await?;
            items.extend(page.items);
            next = page.next;
        }
        Ok(items)
    }
}

/// The next page's URL: the `Link` header's `rel="next"`, else GitLab's `X-Next-Page`
/// applied to `url`.
fn next_page(headers: &HeaderMap, url: &str) -> Option<String> {
    for link in headers.get_all(reqwest::header::LINK) {
        let Ok(link) = link.to_str() else { continue };
        for part in link.split(',') {
            let mut pieces = part.split(';');
            let target = pieces.next()?.trim();
            if pieces.any(|param| matches!(param.trim(), "rel=\"next\"" | "rel=next"))
                && let Some(target) = target.strip_prefix('<').and_then(|t| t.strip_suffix('>'))
            {
                return Some(target.to_owned());
            }
        }
    }
    let page = headers.get("x-next-page")?.to_str().ok()?.trim();
    if page.is_empty() || !page.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut next = url::Url::parse(url).ok()?;
    let pairs: Vec<(String, String)> =
        next.query_pairs().filter(|(name, _)| name != "page").map(|(n, v)| (n.into_owned(), v.into_owned())).collect();
    next.query_pairs_mut().clear().extend_pairs(pairs).append_pair("page", page);
    Some(next.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (HeaderName::from_static(name), HeaderValue::from_str(value).unwrap()))
            .collect()
    }

    #[tokio::test]
    async fn the_credential_goes_only_under_the_api_root() {
        let api = Api::new("https://api.example.com/v3/", "authorization", "Bearer t0ken").unwrap();
        assert_eq!(api.url("/repos/a/b/hooks"), "https://api.example.com/v3/repos/a/b/hooks");
        for elsewhere in
            ["https://api.example.com.evil.test/v3/x", "https://api.example.com/v4/x", "http://api.example.com/v3/x"]
        {
            let err = api.get(elsewhere).await.unwrap_err().to_string();
            assert!(err.starts_with(&format!("refusing to send the credential to {elsewhere}")), "{err}");
            assert!(!err.contains("t0ken"));
        }
    }

    #[test]
    fn the_next_page_comes_from_link_or_x_next_page() {
        let link = "<https://api.github.com/r/1/hooks/2/deliveries?per_page=100&cursor=v1_9>; rel=\"next\", \
                    <https://api.github.com/r/1/hooks/2/deliveries?per_page=100>; rel=\"first\"";
        assert_eq!(
            next_page(&headers(&[("link", link)]), "https://api.github.com/x").as_deref(),
            Some("https://api.github.com/r/1/hooks/2/deliveries?per_page=100&cursor=v1_9")
        );
        let last = "<https://api.github.com/x?page=1>; rel=\"prev\"";
        assert_eq!(next_page(&headers(&[("link", last)]), "https://api.github.com/x"), None);
        assert_eq!(
            next_page(&headers(&[("x-next-page", "3")]), "https://gitlab.example.com/api/v4/p?per_page=100&page=2")
                .as_deref(),
            Some("https://gitlab.example.com/api/v4/p?per_page=100&page=3")
        );
        assert_eq!(next_page(&headers(&[("x-next-page", "")]), "https://gitlab.example.com/api/v4/p"), None);
    }
}
