//! Who is asking, and what they may see (contract section 1a). API Gateway's JWT authorizer
//! has verified the token and lets a request through when it carries one of the route's
//! scopes; the function checks again (defence in depth: a route configured wrongly must
//! not open another caller's refunds), from the claims the authorizer filled in.

use lambda_http::{Request, RequestExt, request::RequestContext};
use refund_shared::{
    config::AccessConfig,
    store::RefundRecord,
    subject::{InvalidSubject, Subject},
};

use crate::error::ApiError;

/// What a caller may do: support sees every refund, a requester only its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// `SupportScope`: any ticket, and the listing.
    Support,
    /// `RequestScope`: asks for refunds and reads the ones it asked for.
    Requester,
}

/// The verified caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    /// The token's `sub`, recorded as `requested_by`; `None` only for a local stack's
    /// unauthenticated request (`ALLOW_UNAUTHENTICATED`).
    pub(crate) sub: Option<Subject>,
    /// `None`: the token carries neither scope.
    role: Option<Role>,
}

impl Caller {
    /// The caller the authorizer verified: 401 `unauthenticated` without a `sub` (or with
    /// one over 255 bytes, which no OpenID provider issues) unless the configuration
    /// allows it, and then the caller is support.
    pub(crate) fn of(request: &Request, access: &AccessConfig) -> Result<Self, ApiError> {
        let jwt = match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(context)) => context
                .authorizer
                .as_ref()
                .and_then(|authorizer| authorizer.jwt.as_ref()),
            _ => None,
        };
        let sub = jwt
            .and_then(|jwt| jwt.claims.get("sub"))
            .map(|sub| Subject::parse(sub));
        match sub {
            Some(Ok(sub)) => {
                let granted = |scope: &str| {
                    let listed = jwt.and_then(|jwt| jwt.scopes.as_ref());
                    let claimed = jwt.and_then(|jwt| jwt.claims.get("scope"));
                    listed.is_some_and(|scopes| scopes.iter().any(|s| s == scope))
                        || claimed.is_some_and(|text| text.split(' ').any(|s| s == scope))
                };
                let role = if granted(&access.support_scope) {
                    Some(Role::Support)
                } else if granted(&access.request_scope) {
                    Some(Role::Requester)
                } else {
                    None
                };
                Ok(Self {
                    sub: Some(sub),
                    role,
                })
            }
            Some(Err(InvalidSubject::TooLong)) => Err(ApiError::Unauthenticated),
            None | Some(Err(InvalidSubject::Blank)) if access.allow_unauthenticated => Ok(Self {
                sub: None,
                role: Some(Role::Support),
            }),
            None | Some(Err(InvalidSubject::Blank)) => Err(ApiError::Unauthenticated),
        }
    }

    /// The PUT and the GET by id: either scope; 403 `insufficient_scope` with neither.
    pub(crate) fn may_request(&self) -> Result<Role, ApiError> {
        self.role.ok_or(ApiError::InsufficientScope)
    }

    /// The listing shows every caller's refunds: support only.
    pub(crate) fn may_list(&self) -> Result<(), ApiError> {
        match self.role {
            Some(Role::Support) => Ok(()),
            _ => Err(ApiError::InsufficientScope),
        }
    }

    /// Whether the caller may read `record`: support always, a requester only the refunds
    /// it asked for first (the record's owner never changes).
    pub(crate) fn owns_or_supports(&self, record: &RefundRecord) -> bool {
        match self.role {
            Some(Role::Support) => true,
            Some(Role::Requester) => self.sub.is_some() && record.requested_by == self.sub,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::request::from_str;
    use serde_json::{Value, json};

    fn request(jwt: Option<Value>) -> Request {
        let mut event = json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/ticket-refunds",
            "rawQueryString": "", "headers": {},
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": "example.com",
                "domainPrefix": "example", "requestId": "r", "routeKey": "$default",
                "stage": "$default", "time": "01/Dec/2026:00:00:00 +0000", "timeEpoch": 0,
                "http": {"method": "GET", "path": "/ticket-refunds", "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "test"}
            },
            "isBase64Encoded": false
        });
        if let Some(jwt) = jwt {
            event["requestContext"]["authorizer"] = json!({ "jwt": jwt });
        }
        from_str(&event.to_string()).unwrap()
    }

    fn caller(jwt: Option<Value>, access: &AccessConfig) -> Result<Caller, ApiError> {
        Caller::of(&request(jwt), access)
    }

    #[test]
    fn the_scopes_decide_the_role() {
        let access = AccessConfig::default();
        let cases = [
            (
                json!({"claims": {"sub": "u"}, "scopes": ["refunds/support"]}),
                Some(Role::Support),
            ),
            (
                json!({"claims": {"sub": "u"}, "scopes": ["refunds/request"]}),
                Some(Role::Requester),
            ),
            // Support wins when both are granted.
            (
                json!({"claims": {"sub": "u"}, "scopes": ["refunds/request", "refunds/support"]}),
                Some(Role::Support),
            ),
            // The space-separated `scope` claim, as some issuers send it.
            (
                json!({"claims": {"sub": "u", "scope": "openid refunds/request"}}),
                Some(Role::Requester),
            ),
            (
                json!({"claims": {"sub": "u"}, "scopes": ["refunds/requests", "refunds"]}),
                None,
            ),
            (
                json!({"claims": {"sub": "u", "scope": "refunds/support-x"}}),
                None,
            ),
            (json!({"claims": {"sub": "u"}, "scopes": null}), None),
        ];
        for (jwt, role) in cases {
            let caller = caller(Some(jwt.clone()), &access).unwrap();
            assert_eq!(caller.role, role, "{jwt}");
            assert_eq!(caller.sub.as_ref().map(Subject::as_str), Some("u"));
        }
    }

    #[test]
    fn without_a_verified_sub_the_caller_is_unauthenticated_unless_allowed() {
        let strict = AccessConfig::default();
        let local = AccessConfig {
            allow_unauthenticated: true,
            ..AccessConfig::default()
        };
        let long = "s".repeat(Subject::MAX_BYTES + 1);
        for jwt in [
            None,
            Some(json!({"claims": {}, "scopes": ["refunds/support"]})),
            Some(json!({"claims": {"sub": "  "}, "scopes": ["refunds/support"]})),
        ] {
            assert!(matches!(
                caller(jwt.clone(), &strict),
                Err(ApiError::Unauthenticated)
            ));
            let served = caller(jwt, &local).unwrap();
            assert_eq!((served.sub, served.role), (None, Some(Role::Support)));
        }
        // A sub no provider issues is refused even locally: it is not a missing one.
        let oversized = json!({"claims": {"sub": long}, "scopes": ["refunds/support"]});
        for access in [&strict, &local] {
            assert!(matches!(
                caller(Some(oversized.clone()), access),
                Err(ApiError::Unauthenticated)
            ));
        }
        let at_the_bound = json!({"claims": {"sub": "s".repeat(Subject::MAX_BYTES)}});
        assert!(caller(Some(at_the_bound), &strict).is_ok());
    }

    #[test]
    fn a_requester_sees_only_what_it_asked_for() {
        let access = AccessConfig::default();
        let requester = caller(
            Some(json!({"claims": {"sub": "alice"}, "scopes": ["refunds/request"]})),
            &access,
        )
        .unwrap();
        let support = caller(
            Some(json!({"claims": {"sub": "agent"}, "scopes": ["refunds/support"]})),
            &access,
        )
        .unwrap();
        let mut record: RefundRecord = serde_json::from_value(json!({
            "ticket_id": "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f", "status": "accepted",
            "idempotency_key": "6ba7b810-9dad-51d1-80b4-00c04fd430c8",
            "correlation_id": "c", "requested_by": "alice", "attempts": 0,
            "last_error": null, "failure_reason": null,
            "accepted_at": "2026-12-01T00:00:00.000000Z", "updated_at": "2026-12-01T00:00:00.000000Z",
            "completed_at": null, "receipt_voided_at": null, "payment_refunded_at": null,
            "interactions": []
        }))
        .unwrap();
        assert!(requester.owns_or_supports(&record) && support.owns_or_supports(&record));
        record.requested_by = Subject::parse("bob").ok();
        assert!(!requester.owns_or_supports(&record) && support.owns_or_supports(&record));
        record.requested_by = None;
        assert!(!requester.owns_or_supports(&record));
        assert_eq!(requester.may_request().unwrap(), Role::Requester);
        assert!(matches!(
            requester.may_list(),
            Err(ApiError::InsufficientScope)
        ));
        assert!(support.may_list().is_ok());
    }
}
