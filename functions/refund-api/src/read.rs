//! The GETs of the refund records: `GET /ticket-refund/{ticket_id}`, one record, and
//! `GET /ticket-refunds?status=&limit=&cursor=`, the records newest first, a page at a
//! time with a signed cursor. Both only read.

use lambda_http::{
    Body, Request, RequestExt, Response, aws_lambda_events::query_map::QueryMap, http::StatusCode,
};
use refund_shared::{
    command::TicketId,
    correlation::CorrelationId,
    store::{ListQuery, PageLimit, RefundRecord, RefundStatus, RefundStore},
};
use serde::Serialize;

use crate::{caller::Caller, error::ApiError, records::RefundRecords, render::json_response};

/// The listing's 200 body; `next_cursor` is `null` on the last page.
#[derive(Debug, Serialize)]
struct Listing<'a> {
    items: &'a [RefundRecord],
    next_cursor: Option<String>,
}

/// `GET /ticket-refund/{id}`: one strongly consistent read. Another caller's record is
/// answered as a missing one, so a ticket id does not tell whether it was refunded.
pub(crate) async fn get_refund<S: RefundStore>(
    records: &RefundRecords<S>,
    caller: &Caller,
    ticket_id: TicketId,
    correlation: &CorrelationId,
) -> Result<Response<Body>, ApiError> {
    let record = records
        .store
        .get(ticket_id)
        .await
        .map_err(ApiError::from_store)?
        .filter(|record| caller.owns_or_supports(record))
        .ok_or(ApiError::RefundNotFound)?;
    tracing::info!(
        ticket_id = %ticket_id,
        correlation_id = %correlation,
        status = record.status.as_str(),
        outcome = "found",
        "refund status read"
    );
    json_response(StatusCode::OK, &record)
}

/// `GET /ticket-refunds`: parameters are checked before the cursor key is fetched, so a
/// bad request never waits for Secrets Manager; the key is needed for every page (to
/// check the cursor given and to sign the next one).
pub(crate) async fn list_refunds<S: RefundStore>(
    records: &RefundRecords<S>,
    request: &Request,
    correlation: &CorrelationId,
) -> Result<Response<Body>, ApiError> {
    let parameters = ListParameters::parse(request.query_string_parameters_ref())?;
    let codec = records.cursor_keys.codec().await?;
    let cursor = parameters
        .cursor
        .map(|text| codec.decode(text, parameters.filter))
        .transpose()
        .map_err(|_| ApiError::InvalidCursor)?;
    let page = records
        .store
        .list(ListQuery {
            status: parameters.filter,
            limit: parameters.limit,
            cursor,
        })
        .await
        .map_err(ApiError::from_store)?;

    tracing::info!(
        correlation_id = %correlation,
        status = parameters.filter.map(RefundStatus::as_str),
        limit = parameters.limit.get(),
        continued = parameters.cursor.is_some(),
        items = page.items.len(),
        more = page.next_cursor.is_some(),
        outcome = "listed",
        "refund statuses listed"
    );
    let body = Listing {
        items: &page.items,
        next_cursor: page.next_cursor.as_ref().map(|cursor| codec.encode(cursor)),
    };
    json_response(StatusCode::OK, &body)
}

/// The listing's query, parsed; unknown parameters are ignored.
struct ListParameters<'q> {
    /// `status`: only records in this refund status.
    filter: Option<RefundStatus>,
    limit: PageLimit,
    /// `cursor`, as given: it is checked against the key and the filter once the key is had.
    cursor: Option<&'q str>,
}

impl<'q> ListParameters<'q> {
    fn parse(query: Option<&'q QueryMap>) -> Result<Self, ApiError> {
        let filter = query_parameter(query, "status", ApiError::InvalidStatus)?
            .map(str::parse::<RefundStatus>)
            .transpose()
            .map_err(|_| ApiError::InvalidStatus)?;
        let limit = match query_parameter(query, "limit", ApiError::InvalidLimit)? {
            Some(text) => text.parse().map_err(|_| ApiError::InvalidLimit)?,
            // Absent: the contract's default page.
            None => PageLimit::DEFAULT,
        };
        let cursor = query_parameter(query, "cursor", ApiError::InvalidCursor)?;
        Ok(Self {
            filter,
            limit,
            cursor,
        })
    }
}

/// A query parameter given at most once. An empty value is a value, and a bad one: `?status=`
/// is not a status (openapi.yaml says what each parameter may hold, and the answer must
/// not depend on a reading the document does not state). Given twice, even with the same
/// value, it is `error`: the request is ambiguous, and guessing could show a client a
/// listing it did not ask for.
fn query_parameter<'q>(
    query: Option<&'q QueryMap>,
    name: &str,
    error: ApiError,
) -> Result<Option<&'q str>, ApiError> {
    let Some(values) = query.and_then(|query| query.all(name)) else {
        return Ok(None);
    };
    match values.as_slice() {
        [value] => Ok(Some(*value)),
        _ => Err(error),
    }
}
