//! Who may do what through the API (contract section 1a): the two scopes the function checks
//! itself, and the local stack's one exception for callers without a token.

use url::Url;

use super::{ConfigError, Env, is_loopback};

/// The scope of customer-facing clients (template parameter `RequestScope`).
pub const REQUEST_SCOPE: &str = "REQUEST_SCOPE";
/// The scope of support agents and operators (template parameter `SupportScope`).
pub const SUPPORT_SCOPE: &str = "SUPPORT_SCOPE";
/// `true` treats a request without a verified caller as support; local stacks only.
pub const ALLOW_UNAUTHENTICATED: &str = "ALLOW_UNAUTHENTICATED";

/// The template's defaults for the two scopes.
pub const DEFAULT_REQUEST_SCOPE: &str = "refunds/request";
pub const DEFAULT_SUPPORT_SCOPE: &str = "refunds/support";

const SCOPE: &str = "one OAuth scope: 1 to 128 visible ASCII characters, no quote or backslash";

/// What the function checks on every request, whatever API Gateway's routes already let
/// through (defence in depth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessConfig {
    /// May ask for a refund and read the refunds it asked for.
    pub request_scope: String,
    /// May do all of that on any ticket, and list every refund.
    pub support_scope: String,
    /// A request without a verified `sub` is served as support instead of 401. Refused at
    /// start-up unless `AWS_ENDPOINT_URL` is loopback, so no deployed function can have it.
    pub allow_unauthenticated: bool,
}

impl Default for AccessConfig {
    /// The template's defaults, with every caller authenticated.
    fn default() -> Self {
        Self {
            request_scope: DEFAULT_REQUEST_SCOPE.to_owned(),
            support_scope: DEFAULT_SUPPORT_SCOPE.to_owned(),
            allow_unauthenticated: false,
        }
    }
}

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    /// The access rules, each variable checked on its own, then against each other.
    pub(super) fn access(&self) -> Result<AccessConfig, ConfigError> {
        let access = AccessConfig {
            request_scope: self.scope(REQUEST_SCOPE, DEFAULT_REQUEST_SCOPE)?,
            support_scope: self.scope(SUPPORT_SCOPE, DEFAULT_SUPPORT_SCOPE)?,
            allow_unauthenticated: self.boolean(ALLOW_UNAUTHENTICATED, false)?,
        };
        if access.request_scope == access.support_scope {
            return Err(ConfigError::Malformed {
                name: SUPPORT_SCOPE,
                value: access.support_scope,
                meaning: "a scope other than REQUEST_SCOPE (every requester would be support)",
            });
        }
        if access.allow_unauthenticated && !self.endpoint_is_loopback() {
            return Err(ConfigError::UnauthenticatedOutsideLocal);
        }
        Ok(access)
    }

    fn scope(&self, name: &'static str, default: &str) -> Result<String, ConfigError> {
        let Some(value) = (self.0)(name).filter(|v| !v.is_empty()) else {
            return Ok(default.to_owned());
        };
        let valid = (1..=128).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\'));
        if valid {
            Ok(value)
        } else {
            Err(ConfigError::Malformed {
                name,
                value,
                meaning: SCOPE,
            })
        }
    }

    /// Whether the SDK is pointed at a local endpoint (`AWS_ENDPOINT_URL` on loopback):
    /// the one sign that this is not a deployed function.
    fn endpoint_is_loopback(&self) -> bool {
        (self.0)("AWS_ENDPOINT_URL")
            .and_then(|value| Url::parse(value.trim()).ok())
            .is_some_and(|url| is_loopback(&url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiConfig;

    fn api_with(vars: &[(&str, &str)]) -> Result<ApiConfig, ConfigError> {
        let mut all = vec![(
            "REFUND_QUEUE_URL",
            "http://127.0.0.1:4566/000000000000/RefundTicket",
        )];
        all.extend_from_slice(vars);
        ApiConfig::from_lookup(|name| {
            all.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn the_scopes_default_to_the_templates() {
        assert_eq!(api_with(&[]).unwrap().access, AccessConfig::default());
        let access = api_with(&[(REQUEST_SCOPE, "tickets/refund"), (SUPPORT_SCOPE, "ops")])
            .unwrap()
            .access;
        assert_eq!(access.request_scope, "tickets/refund");
        assert_eq!(access.support_scope, "ops");
    }

    #[test]
    fn a_bad_or_shared_scope_is_named() {
        for (vars, named) in [
            (vec![(REQUEST_SCOPE, "two words")], REQUEST_SCOPE),
            (vec![(SUPPORT_SCOPE, "quo\"te")], SUPPORT_SCOPE),
            (vec![(REQUEST_SCOPE, &*"s".repeat(129))], REQUEST_SCOPE),
            (
                vec![(REQUEST_SCOPE, "same"), (SUPPORT_SCOPE, "same")],
                SUPPORT_SCOPE,
            ),
        ] {
            let error = api_with(&vars).unwrap_err().to_string();
            assert!(error.starts_with(named), "{vars:?}: {error}");
        }
    }

    #[test]
    fn unauthenticated_callers_are_allowed_only_against_a_loopback_endpoint() {
        for endpoint in [
            "http://127.0.0.1:4566",
            "http://localhost:4566",
            "http://[::1]:1",
        ] {
            let access = api_with(&[
                (ALLOW_UNAUTHENTICATED, "true"),
                ("AWS_ENDPOINT_URL", endpoint),
            ])
            .unwrap()
            .access;
            assert!(access.allow_unauthenticated, "{endpoint}");
        }
        for endpoint in [
            None,
            Some("https://sqs.eu-west-1.amazonaws.com"),
            Some("junk"),
        ] {
            let mut vars = vec![(ALLOW_UNAUTHENTICATED, "true")];
            vars.extend(endpoint.map(|e| ("AWS_ENDPOINT_URL", e)));
            assert_eq!(
                api_with(&vars).unwrap_err(),
                ConfigError::UnauthenticatedOutsideLocal,
                "{endpoint:?}"
            );
        }
        assert!(!api_with(&[]).unwrap().access.allow_unauthenticated);
        let error = api_with(&[(ALLOW_UNAUTHENTICATED, "maybe")]).unwrap_err();
        assert!(
            error.to_string().starts_with(ALLOW_UNAUTHENTICATED),
            "{error}"
        );
    }
}
