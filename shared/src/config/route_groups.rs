//! `routeGroups` and `routeGroup` backends (agentgateway's delegation): a route hands its
//! requests to a group of child routes. Delegation is resolved when the config is validated:
//! each child becomes a route of the parent's listener that matches what both match, under
//! the parent's policies overlaid by its own (per policy, the child's wins), and the parent
//! stays as a 404 for its requests no child matches, as agentgateway answers them. The data
//! plane and the proto never see a group.

use std::collections::HashMap;

use serde::Deserialize;

use super::listeners::{PathMatch, RawRoute, Route, RouteMatch};
use super::path::YamlPath;
use super::policies::{DirectResponse, Policies};
use super::raw::Lenient;
use super::validate::Validator;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRouteGroup {
    pub name: String,
    #[serde(default)]
    pub routes: Vec<Lenient<RawRoute>>,
}

/// A validated route, or one that delegates to a group (not yet resolved).
#[derive(Debug, Clone)]
pub enum Routed {
    Route(Route),
    Delegates {
        /// The route without backends.
        parent: Route,
        group: String,
        /// Where the `routeGroup` is written.
        at: YamlPath,
    },
}

/// Validated groups by name.
pub type RouteGroups = HashMap<String, Vec<Routed>>;

impl Validator<'_> {
    pub fn route_groups(&mut self, raw: &[Lenient<RawRouteGroup>], root: &YamlPath) -> RouteGroups {
        let mut groups = RouteGroups::new();
        let validated = self.list(raw, root, "routeGroups", |v, g, _, gp| {
            let routes = v.list(&g.routes, gp, "routes", |v, r, i, rp| {
                let name = r.name.clone().unwrap_or_else(|| format!("route{i}"));
                v.route(r, name, rp)
            });
            Some((g.name.clone(), routes, gp.key("name")))
        });
        for (name, routes, at) in validated {
            if groups.insert(name.clone(), routes).is_some() {
                self.error(&at, format!("route group name `{name}` is used twice"));
            }
        }
        groups
    }

    /// The routes `routed` stands for: itself, or the children of the group it delegates to
    /// (recursively), then itself as a 404.
    pub fn resolve_delegation(&mut self, routed: Routed, groups: &RouteGroups) -> Vec<Route> {
        match routed {
            Routed::Route(route) => vec![route],
            Routed::Delegates { parent, group, at } => {
                self.delegate(&parent, &group, &at, groups, &mut Vec::new())
            }
        }
    }

    fn delegate(
        &mut self,
        parent: &Route,
        group: &str,
        at: &YamlPath,
        groups: &RouteGroups,
        chain: &mut Vec<String>,
    ) -> Vec<Route> {
        if chain.iter().any(|g| g == group) {
            let cycle = chain.join(" -> ");
            self.error(
                at,
                format!("route group `{group}` delegates back to itself ({cycle} -> {group})"),
            );
            return Vec::new();
        }
        let Some(children) = groups.get(group) else {
            self.error(at, format!("no route group is named `{group}`"));
            return Vec::new();
        };
        chain.push(group.to_string());
        let mut routes = Vec::new();
        for child in children {
            match child {
                Routed::Route(child) => {
                    let leaf = self.combine(parent, child, at).map(Route::checked);
                    routes.extend(leaf.and_then(|built| self.checked(built, at)));
                }
                Routed::Delegates {
                    parent: middle,
                    group: next,
                    at: next_at,
                } => {
                    if let Some(middle) = self.combine(parent, middle, at) {
                        routes.extend(self.delegate(&middle, next, next_at, groups, chain));
                    }
                }
            }
        }
        chain.pop();
        routes.push(not_found(parent));
        routes
    }

    /// `child` under `parent`: what both match, the parent's policies overlaid by the child's
    /// (not yet checked as a route: a child that delegates further has no backends).
    fn combine(&mut self, parent: &Route, child: &Route, at: &YamlPath) -> Option<Route> {
        let matches: Vec<RouteMatch> = parent
            .matches
            .iter()
            .flat_map(|p| child.matches.iter().filter_map(move |c| both(p, c)))
            .collect();
        if matches.is_empty() {
            self.error(
                at,
                format!(
                    "route `{}` of the group can never match under route `{}`: its paths lie outside the parent's (regex paths cannot be combined)",
                    child.name, parent.name
                ),
            );
            return None;
        }
        let hostnames = match (parent.hostnames.is_empty(), child.hostnames.is_empty()) {
            (_, true) => parent.hostnames.clone(),
            (true, false) => child.hostnames.clone(),
            (false, false) => {
                self.error(
                    at,
                    format!(
                        "route `{}` of the group sets `hostnames` under a route that has them; set them on one",
                        child.name
                    ),
                );
                return None;
            }
        };
        Some(Route {
            name: child.name.clone(),
            hostnames,
            matches,
            policies: Policies::effective(&[&parent.policies, &child.policies]),
            backends: child.backends.clone(),
        })
    }
}

/// What a request must satisfy to match both `parent` and `child`; `None` when nothing can.
fn both(parent: &RouteMatch, child: &RouteMatch) -> Option<RouteMatch> {
    use PathMatch::{Exact, PathPrefix};
    let path = match (&parent.path, &child.path) {
        (PathPrefix(p), PathPrefix(c)) if c.starts_with(p.as_str()) => child.path.clone(),
        (PathPrefix(p), PathPrefix(c)) if p.starts_with(c.as_str()) => parent.path.clone(),
        (PathPrefix(p), Exact(e)) if e.starts_with(p.as_str()) => child.path.clone(),
        (Exact(e), PathPrefix(c)) if e.starts_with(c.as_str()) => parent.path.clone(),
        (Exact(a), Exact(b)) if a == b => child.path.clone(),
        _ => return None,
    };
    let method = match (&parent.method, &child.method) {
        (Some(a), Some(b)) if a != b => return None,
        (a, b) => a.clone().or_else(|| b.clone()),
    };
    Some(RouteMatch {
        path,
        method,
        headers: [parent.headers.clone(), child.headers.clone()].concat(),
        query: [parent.query.clone(), child.query.clone()].concat(),
    })
}

/// The delegating route itself: its requests no child matched get agentgateway's 404, after
/// its identity and limits.
fn not_found(parent: &Route) -> Route {
    let mut route = parent.clone();
    route.policies.direct_response = Some(DirectResponse {
        status: 404,
        body: bytes::Bytes::from_static(b"route not found"),
    });
    route
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(p: &str) -> RouteMatch {
        RouteMatch {
            path: PathMatch::PathPrefix(p.into()),
            ..RouteMatch::any()
        }
    }

    #[test]
    fn both_keeps_the_narrower_path_and_every_condition() {
        let child = both(&prefix("/a"), &prefix("/a/b")).unwrap();
        assert_eq!(child.path, PathMatch::PathPrefix("/a/b".into()));
        assert!(both(&prefix("/a"), &prefix("/c")).is_none());
        let get = RouteMatch {
            method: Some("GET".into()),
            ..prefix("/a")
        };
        let post = RouteMatch {
            method: Some("POST".into()),
            ..prefix("/a/x")
        };
        assert!(
            both(&get, &post).is_none(),
            "no request is both GET and POST"
        );
        let exact = RouteMatch {
            path: PathMatch::Exact("/a/x".into()),
            ..RouteMatch::any()
        };
        assert_eq!(both(&get, &exact).unwrap().method.as_deref(), Some("GET"));
    }
}
