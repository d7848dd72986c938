//! The WebSocket gateway URL of the GovernsAI spec:
//! `ws://host:port/ws?key=<apiKey>&org=<orgId>&channels=org:<org>:decisions`.

use core::fmt;

/// Query parameter names whose values are secrets and are masked by [`redact_url`].
const SECRET_PARAMS: [&str; 8] = ["key", "apikey", "api_key", "token", "access_token", "secret", "password", "sig"];

/// A parsed gateway URL. The API key is kept for connecting but never shown: `Debug` and
/// [`GatewayUrl::redacted`] mask it.
#[derive(Clone, PartialEq, Eq)]
pub struct GatewayUrl {
    url: String,
    key: Option<String>,
    org: Option<String>,
    channels: Vec<String>,
}

impl GatewayUrl {
    /// Parses `url`; absent parameters are `None` / empty. Values are percent-decoded and
    /// `channels` is split on commas.
    pub fn parse(url: &str) -> GatewayUrl {
        let mut key = None;
        let mut org = None;
        let mut channels = Vec::new();
        for (name, value) in query_pairs(url) {
            match name.as_str() {
                "key" if !value.is_empty() => key = Some(value),
                "org" if !value.is_empty() => org = Some(value),
                "channels" => {
                    channels.extend(value.split(',').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned))
                }
                _ => {}
            }
        }
        GatewayUrl { url: url.to_owned(), key, org, channels }
    }

    /// The full URL, key included: only for opening the connection, never for logs.
    pub fn connect_url(&self) -> &str {
        &self.url
    }

    /// The API key (`key=`), if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The organisation id (`org=`), if any.
    pub fn org(&self) -> Option<&str> {
        self.org.as_deref()
    }

    /// Every channel of `channels=`.
    pub fn channels(&self) -> &[String] {
        &self.channels
    }

    /// The first channel ending in `:decisions`, where decision events go.
    pub fn decisions_channel(&self) -> Option<&str> {
        self.channels.iter().map(String::as_str).find(|c| c.ends_with(":decisions"))
    }

    /// The URL with the key masked, safe to log.
    pub fn redacted(&self) -> String {
        redact_url(&self.url)
    }
}

impl fmt::Debug for GatewayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayUrl")
            .field("url", &self.redacted())
            .field("key", &self.key.as_ref().map(|_| "***"))
            .field("org", &self.org)
            .field("channels", &self.channels)
            .finish()
    }
}

impl fmt::Display for GatewayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `url` with secret query values (`key`, `token`, `secret`, ...) and any userinfo password
/// replaced by `***`, so webhook and gateway URLs can be logged.
pub fn redact_url(url: &str) -> String {
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let (base, query) = match before_fragment.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (before_fragment, None),
    };
    let mut out = redact_userinfo(base);
    if let Some(query) = query {
        out.push('?');
        let parts: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_secret_param(name) => format!("{name}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&parts.join("&"));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

fn is_secret_param(name: &str) -> bool {
    let name = percent_decode(name).to_ascii_lowercase();
    SECRET_PARAMS.contains(&name.as_str())
}

/// `scheme://user:pass@host/...` → `scheme://user:***@host/...`.
fn redact_userinfo(base: &str) -> String {
    let Some((scheme, rest)) = base.split_once("://") else {
        return base.to_owned();
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') { format!("{user}:***") } else { user.to_owned() };
            format!("{scheme}://{masked}@{host}{path}")
        }
        None => base.to_owned(),
    }
}

/// The decoded `name=value` pairs of the URL's query.
fn query_pairs(url: &str) -> Vec<(String, String)> {
    let without_fragment = url.split('#').next().unwrap_or(url);
    let Some((_, query)) = without_fragment.split_once('?') else {
        return Vec::new();
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

/// `application/x-www-form-urlencoded` decoding: `%XX` escapes and `+` as space. Invalid
/// escapes are kept literally; invalid UTF-8 becomes U+FFFD.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some((&first, tail)) = rest.split_first() {
        match first {
            b'+' => {
                out.push(b' ');
                rest = tail;
            }
            b'%' => match tail.get(..2).and_then(hex_byte) {
                Some(byte) => {
                    out.push(byte);
                    rest = tail.get(2..).unwrap_or_default();
                }
                None => {
                    out.push(b'%');
                    rest = tail;
                }
            },
            other => {
                out.push(other);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let mut value = 0u8;
    for digit in pair {
        value = value * 16 + u8::try_from(char::from(*digit).to_digit(16)?).ok()?;
    }
    Some(value)
}
