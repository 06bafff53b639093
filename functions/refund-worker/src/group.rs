//! The batch's records sorted into units of work: each body that is not a command alone,
//! and every command of one ticket together (contract 4: the messages of one ticket in a
//! batch share one attempt, so a duplicate delivery or a double click queued twice makes
//! the calls once).

use refund_shared::command::{RefundTicket, TicketId};

use crate::delivery::Delivery;

/// One unit of the batch's work; indexes are the records' positions in the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    /// A body that is not a command (poison), with the decoder's reason.
    Poison { index: usize, error: String },
    /// Every command of one ticket, in batch order; never empty.
    Ticket {
        ticket_id: TicketId,
        members: Vec<Member>,
    },
}

/// One message of a ticket's unit. Each keeps its own command: K is the ticket's, but
/// whether the message carried a foreign key is its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub index: usize,
    pub command: RefundTicket,
}

/// Sorts `deliveries` into units, in the order of each unit's first record.
pub fn by_ticket(deliveries: &[Delivery]) -> Vec<Unit> {
    let mut units: Vec<Unit> = Vec::new();
    for (index, delivery) in deliveries.iter().enumerate() {
        let command = match RefundTicket::decode(&delivery.body) {
            Ok(command) => command,
            Err(error) => {
                let error = error.to_string();
                units.push(Unit::Poison { index, error });
                continue;
            }
        };
        let member = Member { index, command };
        let same_ticket = units.iter_mut().find_map(|unit| match unit {
            Unit::Ticket { ticket_id, members } if *ticket_id == member.command.ticket_id => {
                Some(members)
            }
            _ => None,
        });
        match same_ticket {
            Some(members) => members.push(member),
            None => units.push(Unit::Ticket {
                ticket_id: member.command.ticket_id,
                members: vec![member],
            }),
        }
    }
    units
}

impl Unit {
    /// The batch positions of the unit's records.
    pub fn indexes(&self) -> Vec<usize> {
        match self {
            Self::Poison { index, .. } => vec![*index],
            Self::Ticket { members, .. } => members.iter().map(|m| m.index).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::delivery::first_delivery;

    const A: &str = "0f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f";
    const B: &str = "1f5d8c6e-3a1b-4c2d-9e8f-7a6b5c4d3e2f";

    fn command(ticket: &str) -> String {
        RefundTicket::new(ticket.parse().unwrap(), datetime!(2026-12-03 06:00 UTC))
            .encode()
            .unwrap()
    }

    /// The shape of each unit: `P` a poison record, else the indexes of one ticket.
    fn shapes(bodies: &[String]) -> Vec<String> {
        let deliveries: Vec<Delivery> = bodies.iter().map(|b| first_delivery(b)).collect();
        by_ticket(&deliveries)
            .iter()
            .map(|unit| match unit {
                Unit::Poison { index, .. } => format!("P{index}"),
                Unit::Ticket { ticket_id, members } => {
                    assert!(members.iter().all(|m| m.command.ticket_id == *ticket_id));
                    format!("{:?}", unit.indexes())
                }
            })
            .collect()
    }

    #[test]
    fn commands_of_one_ticket_share_a_unit_and_poison_stands_alone() {
        let (a, b, junk) = (command(A), command(B), "not json".to_owned());
        let upper = command(A).replace(A, &A.to_uppercase());
        let cases: [(Vec<String>, &[&str]); 5] = [
            (vec![], &[]),
            (vec![a.clone()], &["[0]"]),
            (vec![a.clone(), b.clone(), a.clone()], &["[0, 2]", "[1]"]),
            // A ticket id in another case is the same ticket.
            (vec![upper, a.clone()], &["[0, 1]"]),
            (
                vec![junk.clone(), a.clone(), junk, b, a],
                &["P0", "[1, 4]", "P2", "[3]"],
            ),
        ];
        for (bodies, expected) in cases {
            assert_eq!(shapes(&bodies), expected, "{bodies:?}");
        }
    }
}
