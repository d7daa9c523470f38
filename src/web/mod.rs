//! Server-rendered HTML pages (maud): the shell every page shares and its security headers.
//!
//! This module owns how a page is answered: [`HtmlPage`] wraps a page's body in the shared
//! shell (doctype, charset, viewport, title, the shared style sheet) and sends it with a
//! strict Content-Security-Policy. Pages work offline: no CDN, no external font or script.
//! Inline `<script>` and `<style>` elements carry the response's [`Nonce`], the only inline
//! code the policy lets run; everything else comes from this origin (`default-src 'self'`).
//! The pages themselves live in submodules ([`checkout`], [`console`]).

pub(crate) mod checkout;
pub(crate) mod console;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// A random token that marks the inline scripts and styles of one response as the page's
/// own (CSP `'nonce-…'`); fresh for every response.
#[derive(Clone, Debug)]
pub(crate) struct Nonce(String);

impl Nonce {
    /// A fresh nonce: 122 random bits (a v4 UUID), hex.
    pub(crate) fn new() -> Self {
        Nonce(uuid::Uuid::new_v4().simple().to_string())
    }

    /// The value for a `nonce` attribute.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// The Content-Security-Policy of a page whose inline code carries `nonce`: nothing from
/// another origin, no plugins, no framing, forms posting only to this origin.
pub(crate) fn content_security_policy(nonce: &Nonce) -> String {
    let nonce = nonce.as_str();
    format!(
        "default-src 'self'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// The style every page shares: readable on a phone, no external fonts.
const SHARED_STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'PingFang SC','Microsoft YaHei',sans-serif;\
margin:0;background:#f4f5f7;color:#1d1f23;line-height:1.45}\
main{max-width:30rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:.75rem;\
box-shadow:0 1px 4px rgba(0,0,0,.08)}\
h1{font-size:1.25rem;margin:0 0 1rem}\
.muted{color:#5f6673;font-size:.9rem}\
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85rem}\
pre{background:#f4f5f7;padding:.75rem;border-radius:.5rem;overflow-x:auto;white-space:pre-wrap;word-break:break-all}\
";

/// An HTML page: a status, a title, the page's own style and body, answered inside the
/// shared shell with the security headers.
pub(crate) struct HtmlPage {
    /// The HTTP status.
    pub(crate) status: StatusCode,
    /// The `<title>`.
    pub(crate) title: String,
    /// The nonce the body's inline scripts carry (`script nonce=(nonce.as_str())`).
    pub(crate) nonce: Nonce,
    /// CSS of this page, added after the shared style.
    pub(crate) style: &'static str,
    /// What goes inside `<body>`.
    pub(crate) body: Markup,
}

impl HtmlPage {
    /// The whole document.
    pub(crate) fn render(&self) -> Markup {
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    meta name="referrer" content="no-referrer";
                    title { (self.title) }
                    style nonce=(self.nonce.as_str()) {
                        (PreEscaped(SHARED_STYLE)) (PreEscaped(self.style))
                    }
                }
                body { (self.body) }
            }
        }
    }
}

impl IntoResponse for HtmlPage {
    fn into_response(self) -> Response {
        let policy = content_security_policy(&self.nonce);
        let mut response = (self.status, self.render().into_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_str(&policy).expect("the policy is ASCII"),
        );
        set_page_headers(headers);
        response
    }
}

/// The headers every page and every page's data answer carries: never cached (pages show
/// live state), never sniffed as another type, never framed, no referrer sent onwards.
pub(crate) fn set_page_headers(headers: &mut axum::http::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_carry_a_strict_policy_with_their_nonce() {
        let nonce = Nonce::new();
        let page = HtmlPage {
            status: StatusCode::OK,
            title: "<t>".into(),
            nonce: nonce.clone(),
            style: "p{color:red}",
            body: html! { p { "a < b" } script nonce=(nonce.as_str()) { "1" } },
        };
        let text = page.render().into_string();
        assert!(text.starts_with("<!DOCTYPE html>"), "{text}");
        assert!(text.contains("<title>&lt;t&gt;</title>"), "escaped: {text}");
        assert!(text.contains("a &lt; b"), "{text}");
        assert!(text.contains(&format!("<style nonce=\"{}\">", nonce.as_str())));
        let response = page.into_response();
        let policy = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(policy.starts_with("default-src 'self';"), "{policy}");
        assert!(
            policy.contains(&format!("script-src 'nonce-{}'", nonce.as_str())),
            "{policy}"
        );
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        assert_ne!(Nonce::new().as_str(), nonce.as_str(), "fresh every time");
    }
}
