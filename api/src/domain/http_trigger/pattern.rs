//! Route patterns (`/users/{id}/files/{proxy+}`) and the table that matches request paths
//! against them, most specific first. Pure: no I/O, unit-tested here.
//!
//! A pattern is a list of segments: literals, `{name}` (one segment) and a final `{name+}`
//! (one or more). Two patterns are ambiguous exactly when they have the same *shape* (their
//! parameter names erased): any other pair is ordered segment by segment from the left,
//! literal before parameter before greedy parameter, so every path has at most one best match.
//! The shape is what the database keeps unique.

use std::collections::HashMap;
use std::fmt;

/// The longest route accepted.
pub const MAX_ROUTE_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    /// `{name}`: exactly one segment.
    Param(String),
    /// `{name+}`: the rest of the path, one segment or more; last only.
    Proxy(String),
}

/// A parsed route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    segments: Vec<Segment>,
}

/// Why a route is not a valid pattern; the text is shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RouteError(String);

fn invalid(route: &str, why: impl fmt::Display) -> RouteError {
    RouteError(format!("route {route:?} is not valid: {why}"))
}

/// Characters a literal segment may hold: RFC 3986's unreserved and sub-delims, `:` and `@`
/// (a path segment's characters, without percent-escapes, so that a route means one path).
fn literal_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@".contains(c)
}

fn param_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl RoutePattern {
    /// Parses a route as a client writes it: `/` or `/`-separated non-empty segments, no
    /// trailing slash.
    pub fn parse(route: &str) -> Result<RoutePattern, RouteError> {
        if !route.starts_with('/') {
            return Err(invalid(route, "it must start with /"));
        }
        if route.len() > MAX_ROUTE_LEN {
            return Err(invalid(
                route,
                format_args!("it is longer than {MAX_ROUTE_LEN} characters"),
            ));
        }
        if route == "/" {
            return Ok(RoutePattern { segments: vec![] });
        }
        let parts: Vec<&str> = route[1..].split('/').collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (index, part) in parts.iter().enumerate() {
            let last = index + 1 == parts.len();
            let segment = if part.is_empty() {
                return Err(invalid(
                    route,
                    "segments must not be empty (no // and no trailing /)",
                ));
            } else if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                match inner.strip_suffix('+') {
                    Some(name) if param_name(name) && last => Segment::Proxy(name.to_owned()),
                    Some(name) if param_name(name) => {
                        return Err(invalid(
                            route,
                            format_args!("{{{name}+}} may only be the last segment"),
                        ));
                    }
                    None if param_name(inner) => Segment::Param(inner.to_owned()),
                    _ => {
                        return Err(invalid(
                            route,
                            format_args!(
                                "{part:?} is not a parameter: use {{name}} or a final {{name+}}, name as [A-Za-z_][A-Za-z0-9_]*"
                            ),
                        ));
                    }
                }
            } else if part.chars().all(literal_char) {
                Segment::Literal((*part).to_owned())
            } else {
                return Err(invalid(
                    route,
                    format_args!(
                        "segment {part:?} may hold only letters, digits and -._~!$&'()*+,;=:@, or be a whole {{parameter}}"
                    ),
                ));
            };
            segments.push(segment);
        }
        let mut names: Vec<&str> = segments
            .iter()
            .filter_map(|s| match s {
                Segment::Param(name) | Segment::Proxy(name) => Some(name.as_str()),
                Segment::Literal(_) => None,
            })
            .collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(invalid(
                route,
                format_args!("parameter {{{}}} appears twice", pair[0]),
            ));
        }
        Ok(RoutePattern { segments })
    }

    /// The route with its parameter names erased (`/users/{}/{+}`): equal shapes are
    /// ambiguous, different ones never are.
    pub fn shape(&self) -> String {
        if self.segments.is_empty() {
            return "/".to_owned();
        }
        let mut shape = String::new();
        for segment in &self.segments {
            shape.push('/');
            match segment {
                Segment::Literal(text) => shape.push_str(text),
                Segment::Param(_) => shape.push_str("{}"),
                Segment::Proxy(_) => shape.push_str("{+}"),
            }
        }
        shape
    }

    /// Whether its first segment is a parameter: such a route answers paths that no literal
    /// route claims, whatever namespace would have wanted them.
    pub fn catches_all(&self) -> bool {
        matches!(
            self.segments.first(),
            Some(Segment::Param(_) | Segment::Proxy(_))
        )
    }

    /// The first segment when it is a literal (`shop` of `/shop/{item}`); `None` for `/` and a
    /// catch-all.
    pub fn first_literal(&self) -> Option<&str> {
        match self.segments.first() {
            Some(Segment::Literal(text)) => Some(text),
            _ => None,
        }
    }

    /// Whether some path matches both patterns. Within a namespace the more specific route
    /// answers such a path; across namespaces it would take the other tenant's requests (a
    /// literal under another's parameter, say), so a route may not overlap another namespace's.
    pub fn overlaps(&self, other: &RoutePattern) -> bool {
        fn overlap(a: &[Segment], b: &[Segment]) -> bool {
            match (a.first(), b.first()) {
                (None, None) => true,
                // A final {name+} takes one segment or more, so any rest that is not empty.
                (Some(Segment::Proxy(_)), Some(_)) | (Some(_), Some(Segment::Proxy(_))) => true,
                (None, Some(_)) | (Some(_), None) => false,
                (Some(x), Some(y)) => {
                    let same_segment = match (x, y) {
                        (Segment::Literal(x), Segment::Literal(y)) => x == y,
                        _ => true,
                    };
                    same_segment && overlap(&a[1..], &b[1..])
                }
            }
        }
        overlap(&self.segments, &other.segments)
    }

    /// Whether this route, added beside `other`, would take requests `other` answers: some
    /// path matches both and this one is the more specific there (the matcher's order: at the
    /// first segment where their kinds differ, a literal before a parameter before a final
    /// `{name+}`). Same-shaped routes are another matter (refused by their shape).
    pub fn takes_from(&self, other: &RoutePattern) -> bool {
        fn rank(segment: &Segment) -> u8 {
            match segment {
                Segment::Literal(_) => 2,
                Segment::Param(_) => 1,
                Segment::Proxy(_) => 0,
            }
        }
        if !self.overlaps(other) {
            return false;
        }
        self.segments
            .iter()
            .zip(&other.segments)
            .map(|(mine, theirs)| (rank(mine), rank(theirs)))
            .find(|(mine, theirs)| mine != theirs)
            .is_some_and(|(mine, theirs)| mine > theirs)
    }

    #[cfg(test)]
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }
}

/// A match: the value and the path parameters, percent-decoded, by name.
#[derive(Debug, PartialEq, Eq)]
pub struct Match<'a, T> {
    pub value: &'a T,
    pub params: Vec<(&'a str, String)>,
}

struct Node<T> {
    literals: HashMap<String, Node<T>>,
    param: Option<Box<Node<T>>>,
    /// A route that ends here.
    end: Option<(RoutePattern, T)>,
    /// A route whose `{name+}` starts here.
    proxy: Option<(RoutePattern, T)>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            literals: HashMap::new(),
            param: None,
            end: None,
            proxy: None,
        }
    }
}

/// Routes, matched segment by segment: a trie, so a lookup costs the path's length, not the
/// number of routes.
pub struct RouteMatcher<T> {
    root: Node<T>,
    len: usize,
}

impl<T> Default for RouteMatcher<T> {
    fn default() -> Self {
        RouteMatcher {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<T> RouteMatcher<T> {
    /// How many routes it holds.
    pub fn route_count(&self) -> usize {
        self.len
    }

    /// Adds a route; gives the value back when one of the same shape is there already.
    pub fn insert(&mut self, pattern: RoutePattern, value: T) -> Result<(), T> {
        let mut node = &mut self.root;
        let mut proxy = false;
        for segment in &pattern.segments {
            match segment {
                Segment::Literal(text) => node = node.literals.entry(text.clone()).or_default(),
                Segment::Param(_) => node = node.param.get_or_insert_with(Box::default),
                Segment::Proxy(_) => proxy = true,
            }
        }
        let slot = if proxy {
            &mut node.proxy
        } else {
            &mut node.end
        };
        if slot.is_some() {
            return Err(value);
        }
        *slot = Some((pattern, value));
        self.len += 1;
        Ok(())
    }

    /// The most specific route for `path` (`/a/b`; empty segments are ignored, each segment is
    /// percent-decoded before it is compared).
    pub fn find(&self, path: &str) -> Option<Match<'_, T>> {
        let segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let (pattern, value) = find_in(&self.root, &segments, 0)?;
        let mut params = Vec::new();
        for (index, segment) in pattern.segments.iter().enumerate() {
            match segment {
                Segment::Param(name) => params.push((name.as_str(), segments[index].clone())),
                Segment::Proxy(name) => params.push((name.as_str(), segments[index..].join("/"))),
                Segment::Literal(_) => {}
            }
        }
        Some(Match { value, params })
    }
}

/// Depth first, literal before parameter before greedy parameter: the first route found is
/// the most specific, from the left.
fn find_in<'a, T>(
    node: &'a Node<T>,
    segments: &[String],
    depth: usize,
) -> Option<&'a (RoutePattern, T)> {
    let Some(segment) = segments.get(depth) else {
        return node.end.as_ref();
    };
    if let Some(child) = node.literals.get(segment)
        && let Some(found) = find_in(child, segments, depth + 1)
    {
        return Some(found);
    }
    if let Some(child) = &node.param
        && let Some(found) = find_in(child, segments, depth + 1)
    {
        return Some(found);
    }
    node.proxy.as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(routes: &[&str]) -> RouteMatcher<String> {
        let mut matcher = RouteMatcher::default();
        for route in routes {
            let pattern = RoutePattern::parse(route).unwrap();
            assert!(
                matcher.insert(pattern, route.to_string()).is_ok(),
                "{route}"
            );
        }
        matcher
    }

    fn best(matcher: &RouteMatcher<String>, path: &str) -> Option<(String, Vec<(String, String)>)> {
        matcher.find(path).map(|m| {
            (
                m.value.clone(),
                m.params
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
            )
        })
    }

    #[test]
    fn routes_overlap_when_a_path_matches_both() {
        let overlaps = |a: &str, b: &str| {
            let (a, b) = (
                RoutePattern::parse(a).unwrap(),
                RoutePattern::parse(b).unwrap(),
            );
            assert_eq!(a.overlaps(&b), b.overlaps(&a), "symmetric");
            a.overlaps(&b)
        };
        let table = [
            ("/shop/{item}", "/shop/checkout", true),
            ("/shop/{item}", "/shop/{thing}", true),
            ("/shop/{item}", "/shop/{rest+}", true),
            ("/shop/{rest+}", "/shop/a/b/c", true),
            ("/{tenant}/x", "/shop/x", true),
            ("/{any+}", "/shop", true),
            ("/{any+}", "/a/{b}/c", true),
            ("/shop", "/shop", true),
            ("/", "/", true),
            ("/shop/{item}", "/shop", false),
            ("/shop/{item}", "/shop/a/b", false),
            ("/shop/{rest+}", "/shop", false),
            ("/{any+}", "/", false),
            ("/shop/checkout", "/shop/cart", false),
            ("/shop/{item}/reviews", "/shop/{item}/price", false),
            ("/a/{b}", "/c/{d}", false),
        ];
        for (a, b, expected) in table {
            assert_eq!(overlaps(a, b), expected, "{a} and {b}");
        }
    }

    #[test]
    fn a_route_takes_from_another_only_where_it_is_the_more_specific() {
        let takes = |a: &str, b: &str| {
            RoutePattern::parse(a)
                .unwrap()
                .takes_from(&RoutePattern::parse(b).unwrap())
        };
        let table = [
            // A literal under another's parameter, a parameter or catch-all under its prefix.
            ("/shop/checkout", "/shop/{item}", true),
            ("/shop/{item}", "/shop/{rest+}", true),
            ("/shop/a/{rest+}", "/shop/{rest+}", true),
            ("/shop/{item}/x", "/shop/{rest+}", true),
            ("/x", "/{proxy+}", true),
            // The other way round: the less specific route gets only what the other does not.
            ("/shop/{item}", "/shop/checkout", false),
            ("/shop/{rest+}", "/shop/{item}", false),
            ("/{proxy+}", "/x", false),
            // Same shape (refused by its shape), or no path in common.
            ("/shop/{a}", "/shop/{b}", false),
            ("/shop/cart", "/shop/checkout", false),
            ("/shop/{item}", "/shop", false),
        ];
        for (a, b, expected) in table {
            assert_eq!(takes(a, b), expected, "{a} beside {b}");
        }
    }

    #[test]
    fn routes_parse_into_literals_params_and_a_final_proxy() {
        let pattern = RoutePattern::parse("/users/{id}/files/{path+}").unwrap();
        assert_eq!(
            pattern.segments(),
            &[
                Segment::Literal("users".into()),
                Segment::Param("id".into()),
                Segment::Literal("files".into()),
                Segment::Proxy("path".into()),
            ]
        );
        assert_eq!(pattern.shape(), "/users/{}/files/{+}");
        assert_eq!(RoutePattern::parse("/").unwrap().shape(), "/");
        assert_eq!(
            RoutePattern::parse("/curl_test").unwrap().shape(),
            "/curl_test"
        );
        assert!(RoutePattern::parse("/{proxy+}").unwrap().catches_all());
        assert!(RoutePattern::parse("/{tenant}/x").unwrap().catches_all());
        assert!(!RoutePattern::parse("/a/{proxy+}").unwrap().catches_all());
    }

    #[test]
    fn malformed_routes_are_refused_with_the_reason() {
        for (route, why) in [
            ("hello", "start with /"),
            ("/a//b", "must not be empty"),
            ("/a/", "must not be empty"),
            ("/{p+}/x", "last segment"),
            ("/{1x}", "not a parameter"),
            ("/{}", "not a parameter"),
            ("/a{b}", "may hold only"),
            ("/a b", "may hold only"),
            ("/a%20b", "may hold only"),
            ("/a?b=1", "may hold only"),
            ("/{x}/{x}", "appears twice"),
            ("/{x}/{x+}", "appears twice"),
        ] {
            let error = RoutePattern::parse(route).unwrap_err().to_string();
            assert!(error.contains(why), "{route}: {error}");
        }
        let long = format!("/{}", "a".repeat(MAX_ROUTE_LEN));
        assert!(RoutePattern::parse(&long).is_err());
    }

    #[test]
    fn the_same_shape_is_a_duplicate_whatever_the_parameter_names() {
        let mut matcher = matcher(&["/users/{id}", "/files/{path+}", "/"]);
        for duplicate in ["/users/{name}", "/files/{rest+}", "/"] {
            let pattern = RoutePattern::parse(duplicate).unwrap();
            assert!(
                matcher.insert(pattern, duplicate.into()).is_err(),
                "{duplicate}"
            );
        }
        assert_eq!(matcher.route_count(), 3);
    }

    #[test]
    fn the_most_specific_route_wins_from_the_left() {
        let matcher = matcher(&[
            "/",
            "/users",
            "/users/me",
            "/users/{id}",
            "/users/{id}/files/{path+}",
            "/users/{proxy+}",
            "/a/{x}/b",
            "/a/b/{y}",
            "/{proxy+}",
        ]);
        let name = |path| best(&matcher, path).map(|(route, _)| route);
        assert_eq!(name("/").as_deref(), Some("/"));
        assert_eq!(name("/users").as_deref(), Some("/users"));
        assert_eq!(name("/users/").as_deref(), Some("/users"));
        assert_eq!(name("/users/me").as_deref(), Some("/users/me"));
        assert_eq!(name("/users/42").as_deref(), Some("/users/{id}"));
        assert_eq!(name("/users/42/x").as_deref(), Some("/users/{proxy+}"));
        assert_eq!(
            name("/users/42/files/a/b.txt").as_deref(),
            Some("/users/{id}/files/{path+}")
        );
        assert_eq!(name("/a/b/b").as_deref(), Some("/a/b/{y}"));
        assert_eq!(name("/a/c/b").as_deref(), Some("/a/{x}/b"));
        // A dead end on the literal branch falls back to the parameter one.
        assert_eq!(name("/a/b/c/d").as_deref(), Some("/{proxy+}"));
        assert_eq!(name("/other").as_deref(), Some("/{proxy+}"));
    }

    #[test]
    fn parameters_are_percent_decoded_and_a_proxy_takes_the_rest() {
        let matcher = matcher(&["/users/{id}/files/{path+}", "/hello-world"]);
        assert_eq!(
            best(&matcher, "/users/J%C3%BCrgen/files/a/b%2Fc.txt")
                .unwrap()
                .1,
            vec![
                ("id".to_owned(), "Jürgen".to_owned()),
                ("path".to_owned(), "a/b/c.txt".to_owned())
            ]
        );
        assert!(best(&matcher, "/hello%2Dworld").is_some());
        assert!(
            best(&matcher, "/users/1/files").is_none(),
            "a proxy needs a segment"
        );
        assert!(best(&matcher, "/nothing").is_none());
    }

    #[test]
    fn an_empty_table_matches_nothing() {
        let matcher: RouteMatcher<()> = RouteMatcher::default();
        assert_eq!(matcher.route_count(), 0);
        assert!(matcher.find("/").is_none());
    }
}
