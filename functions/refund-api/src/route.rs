//! Which resource a request is for and which of its endpoints: `respond` hands each
//! request to its endpoint, in the contract's order of checks. A path that is neither
//! resource is a 404 `route_not_found`, and a method a resource does not serve is a 405
//! with that resource's `Allow`.

use lambda_http::{Body, Request, RequestExt, Response, http::Method};
use refund_shared::{
    command::TicketId, config::AccessConfig, queue::CommandQueue, store::RefundStore,
};

use crate::{
    caller::Caller,
    error::ApiError,
    put, read,
    records::RefundRecords,
    request::{self, Correlation},
};

/// The last path segment of the listing route. Matched on the last segment, so the route
/// is found behind a stage prefix (`/prod/ticket-refunds`) too.
const LIST_SEGMENT: &str = "ticket-refunds";

/// What comes before a ticket's `{ticket_id}` in the path, behind a stage prefix too.
const TICKET_PREFIX: &str = "/ticket-refund/";

/// Which resource a request is for; each serves its own methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `/ticket-refund/{ticket_id}`.
    Ticket,
    /// `/ticket-refunds`.
    List,
}

/// What a request asks of its resource: one for each method a resource serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    GetRefund,
    PutRefund,
    ListRefunds,
}

/// The methods `/ticket-refund/{ticket_id}` serves, in the order `Allow` lists them.
const TICKET_ENDPOINTS: &[(Method, Endpoint)] = &[
    (Method::GET, Endpoint::GetRefund),
    (Method::PUT, Endpoint::PutRefund),
];
/// The methods `/ticket-refunds` serves.
const LIST_ENDPOINTS: &[(Method, Endpoint)] = &[(Method::GET, Endpoint::ListRefunds)];

impl Resource {
    /// Each method the resource serves and its endpoint: the one list the dispatch, the
    /// 405 and its `Allow` read.
    fn endpoints(self) -> &'static [(Method, Endpoint)] {
        match self {
            Self::Ticket => TICKET_ENDPOINTS,
            Self::List => LIST_ENDPOINTS,
        }
    }

    /// The methods the resource serves, in the order `Allow` lists them.
    pub fn methods(self) -> impl Iterator<Item = &'static Method> {
        self.endpoints().iter().map(|(method, _)| method)
    }

    fn endpoint(self, method: &Method) -> Option<Endpoint> {
        self.endpoints()
            .iter()
            .find(|(served, _)| served == method)
            .map(|&(_, endpoint)| endpoint)
    }
}

/// Where a request goes: its resource and, for a ticket, the `{ticket_id}` segment.
type Target<'r> = (Resource, Option<&'r str>);

/// What one request is about, once it is known: goes into the error's log line.
#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) ticket_id: Option<TicketId>,
}

/// Routes by resource (from the path) and method, in this order of checks: 404
/// `route_not_found` for a path that is neither resource; 405; the caller (401 without
/// one, 403 without the route's scope), as API Gateway's authorizer would before the
/// function; for the PUT the `Correlation-ID`, then its own headers; for the GETs 404
/// `status_not_enabled` (a disabled feature always says so), then their parameters, then
/// the store.
///
/// A refused `Correlation-ID` is a 400 on the PUT only, because the PUT carries it
/// downstream (the message, every upstream call, the record). A GET only logs and echoes
/// it, so a GET goes on with the generated one it echoes (openapi.yaml lists no
/// `invalid_correlation_id` for the GETs).
pub(crate) async fn respond<Q: CommandQueue, S: RefundStore>(
    queue: &Q,
    records: Option<&RefundRecords<S>>,
    access: &AccessConfig,
    request: &Request,
    correlation: &Correlation,
    seen: &mut Seen,
) -> Result<Response<Body>, ApiError> {
    let ticket_parameter = request
        .path_parameters_ref()
        .and_then(|params| params.first("ticket_id"));
    let (resource, segment) =
        resource(ticket_parameter, request.uri().path()).ok_or(ApiError::RouteNotFound)?;
    let endpoint = resource
        .endpoint(request.method())
        .ok_or_else(|| ApiError::MethodNotAllowed(resource.methods().cloned().collect()))?;
    let caller = Caller::of(request, access)?;
    match endpoint {
        Endpoint::PutRefund => {
            caller.may_request()?;
            if correlation.refused {
                return Err(ApiError::InvalidCorrelationId);
            }
            let refund = put::PutRequest::parse(request, segment, caller)?;
            seen.ticket_id = Some(refund.ticket_id);
            put::put_refund(queue, records, refund, &correlation.id).await
        }
        Endpoint::GetRefund => {
            caller.may_request()?;
            let records = records.ok_or(ApiError::RecordsNotEnabled)?;
            let ticket_id = request::ticket_id(segment)?;
            seen.ticket_id = Some(ticket_id);
            read::get_refund(records, &caller, ticket_id, &correlation.id).await
        }
        Endpoint::ListRefunds => {
            caller.may_list()?;
            let records = records.ok_or(ApiError::RecordsNotEnabled)?;
            read::list_refunds(records, request, &correlation.id).await
        }
    }
}

/// The resource of a request and, for a ticket, its `{ticket_id}`: the path parameter
/// when API Gateway (or a router) matched the route, else the segment after
/// `/ticket-refund/` in `path`, as a direct invoke sends it. `None`: a path that is
/// neither resource, whoever routed it here. The segment is borrowed, never copied or
/// logged: only a 36-byte UUID is ever taken from it.
fn resource<'r>(ticket_parameter: Option<&'r str>, path: &'r str) -> Option<Target<'r>> {
    if let Some(id) = ticket_parameter {
        return Some((Resource::Ticket, Some(id)));
    }
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    if trimmed.rsplit('/').next() == Some(LIST_SEGMENT) {
        return Some((Resource::List, None));
    }
    let (_, segment) = path.rsplit_once(TICKET_PREFIX)?;
    Some((Resource::Ticket, Some(segment)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICKET: &str = "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f";

    /// Which paths are which resource, and which are none.
    #[test]
    fn paths_are_the_ticket_the_listing_or_none() {
        let ticket = |segment| Some((Resource::Ticket, Some(segment)));
        let list = Some((Resource::List, None));
        let cases: [(Option<&str>, &str, Option<Target>); 22] = [
            // The path parameter of a matched route decides, whatever the path.
            (Some(TICKET), "/ticket-refund/x", ticket(TICKET)),
            (Some(TICKET), "/nope", ticket(TICKET)),
            (Some(""), "/ticket-refund/", ticket("")),
            // A direct invoke: the segment after `/ticket-refund/`, valid or not.
            (
                None,
                "/ticket-refund/0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f",
                ticket(TICKET),
            ),
            (None, "/prod/ticket-refund/abc", ticket("abc")),
            (None, "/ticket-refund/", ticket("")),
            (None, "/ticket-refund/a/b", ticket("a/b")),
            (None, "/ticket-refund/..", ticket("..")),
            // The listing, behind a stage prefix and with a trailing slash too.
            (None, "/ticket-refunds", list),
            (None, "/ticket-refunds/", list),
            (None, "/prod/ticket-refunds", list),
            (None, "/prod/ticket-refunds/", list),
            // Neither.
            (None, "", None),
            (None, "/", None),
            (None, "/nope", None),
            (None, "/ticket-refund", None),
            (None, "/ticket-refundsx", None),
            (None, "/ticket-refunds/x", None),
            (None, "/ticket-refunds//", None),
            (None, "/prod", None),
            (None, "/ticket_refund/x", None),
            (None, "ticket-refund/x", None),
        ];
        for (parameter, path, expected) in cases {
            assert_eq!(
                resource(parameter, path),
                expected,
                "{parameter:?} {path:?}"
            );
        }
    }

    #[test]
    fn each_resource_lists_its_methods_in_allows_order() {
        let methods = |resource: Resource| resource.methods().cloned().collect::<Vec<_>>();
        assert_eq!(methods(Resource::Ticket), [Method::GET, Method::PUT]);
        assert_eq!(methods(Resource::List), [Method::GET]);
        assert_eq!(
            Resource::Ticket.endpoint(&Method::PUT),
            Some(Endpoint::PutRefund)
        );
        assert_eq!(Resource::List.endpoint(&Method::PUT), None);
    }
}
