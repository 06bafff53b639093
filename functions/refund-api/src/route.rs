//! Which resource a request is for and which of its endpoints: `respond` hands each
//! request to its endpoint, in the contract's order of checks, and a method a resource
//! does not serve is a 405 with that resource's `Allow`.

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

/// What one request is about, once it is known: goes into the error's log line.
#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) ticket_id: Option<TicketId>,
}

/// Routes by resource (from the path) and method, in this order of checks: 405; the caller
/// (401 without one, 403 without the route's scope), as API Gateway's authorizer would
/// before the function; for the PUT the `Correlation-ID`, then its own headers; for the
/// GETs 404 `status_not_enabled` (a disabled feature always says so), then their
/// parameters, then the store.
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
    let (resource, segment) = resource(request);
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

/// The resource of the request and, for a ticket, its `{ticket_id}`: the path parameter,
/// or when the function was invoked without a router (a direct invoke), the segment after
/// `/ticket-refund/` in the path. A path that is neither resource is taken as a ticket
/// without an id, as before the listing existed (a PUT gets 400 `invalid_ticket_id`). The
/// segment is borrowed, never copied or logged: only a 36-byte UUID is ever taken from it.
fn resource(request: &Request) -> (Resource, Option<&str>) {
    if let Some(id) = request
        .path_parameters_ref()
        .and_then(|params| params.first("ticket_id"))
    {
        return (Resource::Ticket, Some(id));
    }
    let path = request.uri().path();
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    if trimmed.rsplit('/').next() == Some(LIST_SEGMENT) {
        return (Resource::List, None);
    }
    let segment = path.rsplit_once("/ticket-refund/").map(|(_, rest)| rest);
    (Resource::Ticket, segment)
}

#[cfg(test)]
mod tests {
    use super::*;

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
