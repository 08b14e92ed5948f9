//! Routes to scopes: the rules file that says which scopes a request through a gateway
//! needs, by method and path (HTTP paths and gRPC `/package.Service/Method` alike).
//!
//! ```toml
//! [[route]]
//! path = "/healthz"
//! public = true                     # passes without a token
//!
//! [[route]]
//! name = "orders-read"              # the route's label in metrics (default: its path)
//! methods = ["GET", "HEAD"]         # default: every method
//! path = "/v1/orders/**"            # `*` one segment, a final `**` any number
//! scopes = ["orders.read"]
//!
//! [default]                         # what no route matches; without it: refused
//! scopes = ["api.use"]
//! ```
//!
//! The first route that matches wins. Patterns are compared with the request's decoded
//! [`RequestPath`] twice, as it is and in lower case, since services differ on case: a path
//! whose two readings meet different routes is refused (letters whose case is ASCII are
//! refused earlier, by [`RequestPath`]), so that a service ignoring case cannot be reached
//! through a laxer rule than the one it reads the path by. A `GET` rule also covers `HEAD`,
//! which services answer with their `GET` handlers.

use std::path::Path;

use serde::Deserialize;

use super::path::RequestPath;
use crate::domain::PermissionSet;

/// Why a rules file is refused (at start, so that a gateway never runs on half its rules).
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("cannot read the rules file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the rules file is not valid: {0}")]
    Syntax(String),
    #[error("route {route}: {problem}")]
    Route { route: String, problem: String },
}

/// What a matched request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No token: the request passes as it is (identity headers still removed).
    Public,
    /// A valid token holding every one of these scopes.
    Scopes(Vec<String>),
}

/// A request's route: its name (for metrics and logs) and what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub name: String,
    pub access: Access,
}

/// The routes of a rules file, in order, and the default.
#[derive(Debug, Clone)]
pub struct Routes {
    routes: Vec<(Matcher, Route)>,
    default: Option<Route>,
}

#[derive(Debug, Clone)]
struct Matcher {
    /// Upper-case; empty: every method.
    methods: Vec<String>,
    pattern: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// A name, as written and in lower case.
    Literal { exact: String, folded: String },
    /// `*`: exactly one segment.
    Any,
    /// `**`, last: any number of segments, none included.
    Rest,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    route: Vec<RouteEntry>,
    default: Option<AccessEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteEntry {
    name: Option<String>,
    #[serde(default)]
    methods: Vec<String>,
    path: String,
    #[serde(default)]
    public: bool,
    scopes: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessEntry {
    #[serde(default)]
    public: bool,
    scopes: Option<Vec<String>>,
}

/// The longest route name kept, so that metrics labels stay short.
const MAX_NAME: usize = 64;

impl Routes {
    /// Reads the rules file at `path`.
    pub fn load(path: &Path) -> Result<Self, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Reads rules from the text of a rules file.
    pub fn parse(text: &str) -> Result<Self, RulesError> {
        let file: RulesFile =
            toml::from_str(text).map_err(|e| RulesError::Syntax(e.message().to_owned()))?;
        let routes = file
            .route
            .into_iter()
            .map(|entry| {
                let name = entry.name.clone().unwrap_or_else(|| entry.path.clone());
                let fail = |problem: String| RulesError::Route {
                    route: name.clone(),
                    problem,
                };
                let matcher = Matcher {
                    methods: methods(&entry.methods).map_err(fail)?,
                    pattern: pattern(&entry.path).map_err(fail)?,
                };
                let access = AccessEntry {
                    public: entry.public,
                    scopes: entry.scopes,
                };
                let route = route(name.clone(), access).map_err(fail)?;
                if route.name.chars().count() > MAX_NAME {
                    return Err(fail(format!(
                        "the name is longer than {MAX_NAME} characters"
                    )));
                }
                Ok((matcher, route))
            })
            .collect::<Result<_, _>>()?;
        let default = file
            .default
            .map(|access| {
                route("default".to_owned(), access).map_err(|problem| RulesError::Route {
                    route: "default".to_owned(),
                    problem,
                })
            })
            .transpose()?;
        Ok(Self { routes, default })
    }

    /// The route of a request: the first that matches, else the default; `Ok(None)`: no
    /// route (refused). `Err(Ambiguous)` when the path as it is and in lower case meet
    /// different routes, or a path ending in `/` meets different routes with and without
    /// an empty last segment (`/files/` as `/files`, and as the root of `/files/**`).
    pub fn route(&self, method: &str, path: &RequestPath) -> Result<Option<&Route>, Ambiguous> {
        let exact = self.first_match(method, path.segments(), Case::Exact);
        let folded = self.first_match(method, path.folded(), Case::Folded);
        if exact != folded {
            return Err(Ambiguous);
        }
        // `/files/` is `/files` to some services and the root of the `/files/` subtree to
        // others (Go's ServeMux, Werkzeug): read as both, it must meet one rule.
        if path.trailing_slash() {
            for (segments, case) in [
                (path.segments(), Case::Exact),
                (path.folded(), Case::Folded),
            ] {
                let mut subtree = segments.to_vec();
                subtree.push(String::new());
                if self.first_match(method, &subtree, case) != exact {
                    return Err(Ambiguous);
                }
            }
        }
        Ok(match exact {
            Some(index) => self.routes.get(index).map(|(_, route)| route),
            None => self.default.as_ref(),
        })
    }

    fn first_match(&self, method: &str, path: &[String], case: Case) -> Option<usize> {
        self.routes
            .iter()
            .position(|(matcher, _)| matcher.matches(method, path, case))
    }
}

/// A path that two readings route differently (see [`Routes::route`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ambiguous;

#[derive(Debug, Clone, Copy)]
enum Case {
    Exact,
    Folded,
}

impl Matcher {
    fn matches(&self, method: &str, path: &[String], case: Case) -> bool {
        let method_matches = self.methods.is_empty()
            || self.methods.iter().any(|allowed| {
                allowed.eq_ignore_ascii_case(method)
                    || (allowed == "GET" && method.eq_ignore_ascii_case("HEAD"))
            });
        method_matches && segments_match(&self.pattern, path, case)
    }
}

fn segments_match(pattern: &[Segment], path: &[String], case: Case) -> bool {
    match (pattern.split_first(), path.split_first()) {
        (None, None) => true,
        (Some((Segment::Rest, _)), _) => true,
        (Some((Segment::Any, pattern)), Some((_, path))) => segments_match(pattern, path, case),
        (Some((Segment::Literal { exact, folded }, pattern)), Some((segment, path))) => {
            let literal = match case {
                Case::Exact => exact,
                Case::Folded => folded,
            };
            literal == segment && segments_match(pattern, path, case)
        }
        _ => false,
    }
}

fn methods(methods: &[String]) -> Result<Vec<String>, String> {
    methods
        .iter()
        .map(|method| {
            if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(format!("{method:?} is not an HTTP method"));
            }
            Ok(method.to_ascii_uppercase())
        })
        .collect()
}

/// A path pattern as segments; literal segments go through the request path's own
/// reading, so that a pattern means what a request spelled the same way means.
fn pattern(path: &str) -> Result<Vec<Segment>, String> {
    if !path.starts_with('/') {
        return Err(format!("the path {path:?} does not start with /"));
    }
    let raw: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let last = raw.len().saturating_sub(1);
    raw.iter()
        .enumerate()
        .map(|(i, segment)| match *segment {
            "*" => Ok(Segment::Any),
            "**" if i == last => Ok(Segment::Rest),
            "**" => Err("** may only end a path".to_owned()),
            literal if literal.contains('*') => {
                Err(format!("{literal:?}: * stands alone in a segment"))
            }
            literal => match RequestPath::parse(&format!("/{literal}")) {
                Ok(read) if read.segments().len() == 1 => Ok(Segment::Literal {
                    exact: read.segments().concat(),
                    folded: read.folded().concat(),
                }),
                _ => Err(format!("{literal:?} is not a plain path segment")),
            },
        })
        .collect()
}

fn route(name: String, access: AccessEntry) -> Result<Route, String> {
    let access = match (access.public, access.scopes) {
        (true, None) => Access::Public,
        (false, Some(scopes)) if !scopes.is_empty() => {
            let scopes = PermissionSet::parse(&scopes, "scopes").map_err(|e| e.to_string())?;
            Access::Scopes(scopes.to_strings())
        }
        (true, Some(_)) => return Err("a public route lists no scopes".to_owned()),
        (false, _) => return Err("give scopes, or public = true".to_owned()),
    };
    Ok(Route { name, access })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
        [[route]]
        path = "/healthz"
        public = true

        [[route]]
        name = "admin"
        path = "/admin/**"
        scopes = ["admin.write"]

        [[route]]
        methods = ["get"]
        path = "/v1/orders/*"
        scopes = ["orders.read"]

        [[route]]
        path = "/orders.v1.OrdersService/*"
        scopes = ["orders.read", "orders.use"]

        [[route]]
        path = "/**"
        public = true
    "#;

    fn route<'a>(routes: &'a Routes, method: &str, target: &str) -> Option<&'a Route> {
        routes
            .route(method, &RequestPath::parse(target).expect("path"))
            .expect("not ambiguous")
    }

    #[test]
    fn the_first_matching_route_wins() {
        let routes = Routes::parse(RULES).expect("rules");
        let name = |method, target| route(&routes, method, target).map(|r| r.name.as_str());
        assert_eq!(name("GET", "/healthz"), Some("/healthz"));
        assert_eq!(name("GET", "/admin"), Some("admin"));
        assert_eq!(name("POST", "/admin/users/7"), Some("admin"));
        assert_eq!(name("GET", "/v1/orders/7"), Some("/v1/orders/*"));
        // HEAD is answered by GET handlers: a GET rule covers it.
        assert_eq!(name("HEAD", "/v1/orders/7"), Some("/v1/orders/*"));
        assert_eq!(name("POST", "/v1/orders/7"), Some("/**"));
        assert_eq!(name("GET", "/v1/orders/7/items"), Some("/**"));
        assert_eq!(
            route(&routes, "POST", "/orders.v1.OrdersService/Get").map(|r| &r.access),
            Some(&Access::Scopes(vec![
                "orders.read".to_owned(),
                "orders.use".to_owned()
            ]))
        );
    }

    #[test]
    fn a_path_whose_case_changes_its_route_is_refused() {
        let routes = Routes::parse(RULES).expect("rules");
        for target in ["/ADMIN/users", "/Admin", "/V1/orders/7"] {
            let path = RequestPath::parse(target).expect("path");
            assert_eq!(routes.route("GET", &path), Err(Ambiguous), "{target}");
        }
        // A literal route before a `*` one: an id that folds to the literal is refused too.
        let routes = Routes::parse(
            "[[route]]\npath = \"/users/public/avatar\"\npublic = true\n\
             [[route]]\npath = \"/users/*/avatar\"\nscopes = [\"users.read\"]\n",
        )
        .expect("rules");
        let path = RequestPath::parse("/users/PUBLIC/avatar").expect("path");
        assert_eq!(routes.route("GET", &path), Err(Ambiguous));
        // Case that changes nothing is fine.
        let path = RequestPath::parse("/users/Alice/avatar").expect("path");
        assert_eq!(
            routes
                .route("GET", &path)
                .map(|r| r.map(|r| r.name.as_str())),
            Ok(Some("/users/*/avatar"))
        );
    }

    // Security review of issue 23: `/files/` is the root of the `/files/` subtree to Go's
    // ServeMux, not the public `/files`.
    #[test]
    fn a_trailing_slash_that_changes_its_route_is_refused() {
        let routes = Routes::parse(
            "[[route]]\npath = \"/files\"\npublic = true\n\
             [[route]]\npath = \"/files/**\"\nscopes = [\"files.read\"]\n",
        )
        .expect("rules");
        for target in ["/files/", "/FILES/"] {
            let path = RequestPath::parse(target).expect("path");
            assert_eq!(routes.route("GET", &path), Err(Ambiguous), "{target}");
        }
        let name = |target| route(&routes, "GET", target).map(|r| r.name.as_str());
        assert_eq!(name("/files"), Some("/files"));
        assert_eq!(name("/files/a"), Some("/files/**"));
        // Where both readings meet one rule, the slash changes nothing.
        assert_eq!(name("/files/a/"), Some("/files/**"));
        let routes = Routes::parse(RULES).expect("rules");
        let name = |target| route(&routes, "GET", target).map(|r| r.name.as_str());
        assert_eq!(name("/admin/"), Some("admin"));
        assert_eq!(name("/"), Some("/**"));
    }

    #[test]
    fn without_a_default_an_unmatched_request_has_no_route() {
        let routes =
            Routes::parse("[[route]]\npath = \"/a\"\nscopes = [\"x.read\"]\n").expect("rules");
        assert!(route(&routes, "GET", "/b").is_none());
        let routes = Routes::parse(
            "[[route]]\npath = \"/a\"\nscopes = [\"x.read\"]\n[default]\nscopes = [\"y.read\"]\n",
        )
        .expect("rules");
        assert_eq!(
            route(&routes, "GET", "/b").map(|r| r.name.as_str()),
            Some("default")
        );
    }

    #[test]
    fn mistakes_in_a_rules_file_are_refused() {
        for text in [
            "[[route]]\npath = \"/a\"\n",
            "[[route]]\npath = \"/a\"\npublic = true\nscopes = [\"x.read\"]\n",
            "[[route]]\npath = \"/a\"\nscopes = []\n",
            "[[route]]\npath = \"a\"\npublic = true\n",
            "[[route]]\npath = \"/**/a\"\npublic = true\n",
            "[[route]]\npath = \"/a*\"\npublic = true\n",
            "[[route]]\npath = \"/a/../b\"\npublic = true\n",
            "[[route]]\npath = \"/%2F\"\npublic = true\n",
            "[[route]]\npath = \"/a\"\nmethods = [\"G T\"]\npublic = true\n",
            "[[route]]\npath = \"/a\"\npublik = true\n",
            "[[route]]\npath = \"/a\"\nscopes = [\"not a scope\"]\n",
            "[default]\n",
            "[[route]\n",
        ] {
            assert!(Routes::parse(text).is_err(), "{text}");
        }
    }
}
