//! Cookie insertion (HAProxy `cookie NAME insert`): the response of a request that did not
//! carry a valid cookie gets `Set-Cookie: NAME=<backend name>; Path=/; HttpOnly`; a request
//! carrying the cookie of an up backend goes back to it.

use hyper::header::{HeaderMap, HeaderValue, COOKIE};

/// RFC 6265 token (cookie-name): visible ASCII except separators.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'(' | b')'
                        | b'<'
                        | b'>'
                        | b'@'
                        | b','
                        | b';'
                        | b':'
                        | b'\\'
                        | b'"'
                        | b'/'
                        | b'['
                        | b']'
                        | b'?'
                        | b'='
                        | b'{'
                        | b'}'
                )
        })
}

/// RFC 6265 cookie-octet*: no controls (so no CR/LF), space, `"`, `,`, `;` or `\`.
pub fn valid_value(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\'))
}

/// The value of cookie `name` in the request's `Cookie` header(s), if any (the first one).
pub fn find<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

/// `NAME=VALUE; Path=/; HttpOnly`, or `None` when either part would not be a valid cookie
/// (never injects CR/LF or separators).
pub fn set_cookie(name: &str, value: &str) -> Option<HeaderValue> {
    if !valid_name(name) || !valid_value(value) {
        return None;
    }
    HeaderValue::from_str(&format!("{name}={value}; Path=/; HttpOnly")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_named_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; SRV=s2 ; b=3"));
        assert_eq!(find(&h, "SRV"), Some("s2"));
        assert_eq!(find(&h, "b"), Some("3"));
        assert_eq!(find(&h, "SR"), None);
        h.append(COOKIE, HeaderValue::from_static("X=\"q\""));
        assert_eq!(find(&h, "X"), Some("q"));
    }

    #[test]
    fn set_cookie_refuses_unsafe_values() {
        assert_eq!(set_cookie("SRV", "s1").unwrap(), "SRV=s1; Path=/; HttpOnly");
        assert!(set_cookie("SRV", "10.0.0.1:80").is_some());
        assert!(set_cookie("SRV", "a\r\nSet-Cookie: x=y").is_none());
        assert!(set_cookie("SRV", "a;b").is_none());
        assert!(set_cookie("S RV", "a").is_none());
        assert!(set_cookie("S=V", "a").is_none());
        assert!(set_cookie("", "a").is_none());
    }
}
