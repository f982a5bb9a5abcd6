//! Content routing: the first route whose `path_prefix` is a prefix of the path, or whose
//! `extensions` contain the extension of the path's last segment (case-insensitive, without
//! the dot), picks the pool; otherwise the pool is "default".

use crate::config::Route;

pub const DEFAULT_POOL: &str = "default";

/// The extension of the last path segment: "/a/b.CSS" → "CSS"; "/a.b/c" → none.
pub fn extension(path: &str) -> Option<&str> {
    let last = path.rsplit('/').next()?;
    let (stem, ext) = last.rsplit_once('.')?;
    (!stem.is_empty() && !ext.is_empty()).then_some(ext)
}

pub fn pool_for<'a>(routes: &'a [Route], path: &str) -> &'a str {
    let ext = extension(path);
    routes
        .iter()
        .find(|r| {
            r.path_prefix
                .as_deref()
                .is_some_and(|p| !p.is_empty() && path.starts_with(p))
                || ext.is_some_and(|e| {
                    r.extensions
                        .iter()
                        .any(|x| x.trim_start_matches('.').eq_ignore_ascii_case(e))
                })
        })
        .map(|r| r.pool.as_str())
        .unwrap_or(DEFAULT_POOL)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(prefix: Option<&str>, exts: &[&str], pool: &str) -> Route {
        Route {
            path_prefix: prefix.map(String::from),
            extensions: exts.iter().map(|s| s.to_string()).collect(),
            pool: pool.into(),
        }
    }

    #[test]
    fn first_match_wins_else_default() {
        let routes = vec![
            r(Some("/api/"), &[], "api"),
            r(None, &["css", "png"], "static"),
            r(Some("/api/img"), &["jpg"], "never"),
        ];
        assert_eq!(pool_for(&routes, "/api/x.css"), "api");
        assert_eq!(pool_for(&routes, "/site/a.CSS"), "static");
        assert_eq!(pool_for(&routes, "/logo.png"), "static");
        assert_eq!(pool_for(&routes, "/photo.jpg"), "never");
        assert_eq!(pool_for(&routes, "/index.html"), "default");
        assert_eq!(pool_for(&routes, "/api"), "default");
        assert_eq!(pool_for(&[], "/x"), "default");
    }

    #[test]
    fn extension_is_taken_from_the_last_segment_only() {
        assert_eq!(extension("/a/b.css"), Some("css"));
        assert_eq!(extension("/a.css/b"), None);
        assert_eq!(extension("/.hidden"), None);
        assert_eq!(extension("/a/b."), None);
        assert_eq!(extension("/"), None);
    }
}
