//! Our encoding of openraft's messages between nodes (the payloads of the internal gRPC
//! service). Built from `codec`'s pieces, so the wire, like the disk, never depends on
//! openraft's serde layout. Decoding is total: a damaged or hostile message is an `InvalidData`
//! error, never a panic, and never an allocation sized by an untrusted count.

use std::io;

use ledger_sm::decode::Reader;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderError,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};

use crate::codec::{
    bool_read, entry_encode, entry_read, exact, invalid, le, membership_encode, membership_read,
    option_log_id_encode, option_log_id_read, vote_encode, vote_read,
};
use crate::{StoredMembership, TypeConfig, Vote};

pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;

/// Entries reserved up front at most, whatever count a message claims.
const RESERVE_MAX: usize = 1_024;

pub fn append_request_bytes(rpc: &AppendEntriesRequest<TypeConfig>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + 256 * rpc.entries.len());
    vote_encode(&mut out, &rpc.vote);
    option_log_id_encode(&mut out, rpc.prev_log_id.as_ref());
    option_log_id_encode(&mut out, rpc.leader_commit.as_ref());
    le(&mut out, rpc.entries.len() as u64);
    rpc.entries.iter().for_each(|entry| entry_encode(&mut out, entry));
    out
}

/// # Errors
/// `InvalidData` for bytes that are not an append-entries request.
pub fn append_request_decode(bytes: &[u8]) -> Result<AppendEntriesRequest<TypeConfig>, io::Error> {
    exact(bytes, |r| {
        let vote = vote_read(r)?;
        let prev_log_id = option_log_id_read(r)?;
        let leader_commit = option_log_id_read(r)?;
        let count = r.u64().map_err(invalid)?;
        let count = usize::try_from(count).map_err(|_| invalid("entry count"))?;
        let mut entries = Vec::with_capacity(count.min(RESERVE_MAX));
        for _ in 0..count {
            entries.push(entry_read(r)?);
        }
        Ok(AppendEntriesRequest { vote, prev_log_id, entries, leader_commit })
    })
}

pub fn append_response_bytes(response: &AppendEntriesResponse<TypeConfig>) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    match response {
        AppendEntriesResponse::Success => out.push(0),
        AppendEntriesResponse::PartialSuccess(matching) => {
            out.push(1);
            option_log_id_encode(&mut out, matching.as_ref());
        }
        AppendEntriesResponse::Conflict => out.push(2),
        AppendEntriesResponse::HigherVote(vote) => {
            out.push(3);
            vote_encode(&mut out, vote);
        }
    }
    out
}

/// # Errors
/// `InvalidData` for bytes that are not an append-entries response.
pub fn append_response_decode(
    bytes: &[u8],
) -> Result<AppendEntriesResponse<TypeConfig>, io::Error> {
    exact(bytes, |r| {
        Ok(match r.u8().map_err(invalid)? {
            0 => AppendEntriesResponse::Success,
            1 => AppendEntriesResponse::PartialSuccess(option_log_id_read(r)?),
            2 => AppendEntriesResponse::Conflict,
            3 => AppendEntriesResponse::HigherVote(vote_read(r)?),
            tag => return Err(invalid(format!("append response tag {tag}"))),
        })
    })
}

pub fn vote_request_bytes(rpc: &VoteRequest<TypeConfig>) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    vote_encode(&mut out, &rpc.vote);
    option_log_id_encode(&mut out, rpc.last_log_id.as_ref());
    out.push(u8::from(rpc.leadership_transfer));
    out
}

/// # Errors
/// `InvalidData` for bytes that are not a vote request.
pub fn vote_request_decode(bytes: &[u8]) -> Result<VoteRequest<TypeConfig>, io::Error> {
    exact(bytes, |r| {
        let vote = vote_read(r)?;
        let last_log_id = option_log_id_read(r)?;
        let leadership_transfer = bool_read(r)?;
        Ok(VoteRequest { vote, last_log_id, leadership_transfer })
    })
}

pub fn vote_response_bytes(response: &VoteResponse<TypeConfig>) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    vote_encode(&mut out, &response.vote);
    out.push(u8::from(response.vote_granted));
    option_log_id_encode(&mut out, response.last_log_id.as_ref());
    out
}

/// # Errors
/// `InvalidData` for bytes that are not a vote response.
pub fn vote_response_decode(bytes: &[u8]) -> Result<VoteResponse<TypeConfig>, io::Error> {
    exact(bytes, |r| {
        let vote = vote_read(r)?;
        let vote_granted = bool_read(r)?;
        let last_log_id = option_log_id_read(r)?;
        Ok(VoteResponse { vote, vote_granted, last_log_id })
    })
}

pub fn transfer_request_bytes(rpc: &TransferLeaderRequest<TypeConfig>) -> Vec<u8> {
    let mut out = Vec::with_capacity(56);
    vote_encode(&mut out, rpc.from_leader());
    le(&mut out, *rpc.to_node_id());
    option_log_id_encode(&mut out, rpc.last_log_id());
    out
}

/// # Errors
/// `InvalidData` for bytes that are not a leader-transfer request.
pub fn transfer_request_decode(
    bytes: &[u8],
) -> Result<TransferLeaderRequest<TypeConfig>, io::Error> {
    exact(bytes, |r| {
        let from = vote_read(r)?;
        let to = r.u64().map_err(invalid)?;
        let last_log_id = option_log_id_read(r)?;
        Ok(TransferLeaderRequest::new(from, to, last_log_id))
    })
}

pub fn transfer_response_bytes(response: &TransferLeaderResponse<TypeConfig>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    match response {
        Ok(()) => out.push(0),
        Err(TransferLeaderError::VoteChanged { expected, actual }) => {
            out.push(1);
            vote_encode(&mut out, expected);
            vote_encode(&mut out, actual);
        }
        Err(TransferLeaderError::LogNotFlushed { expected, actual }) => {
            out.push(2);
            option_log_id_encode(&mut out, expected.as_ref());
            option_log_id_encode(&mut out, actual.as_ref());
        }
    }
    out
}

/// # Errors
/// `InvalidData` for bytes that are not a leader-transfer response.
pub fn transfer_response_decode(
    bytes: &[u8],
) -> Result<TransferLeaderResponse<TypeConfig>, io::Error> {
    exact(bytes, |r| {
        Ok(match r.u8().map_err(invalid)? {
            0 => Ok(()),
            1 => Err(TransferLeaderError::VoteChanged {
                expected: vote_read(r)?,
                actual: vote_read(r)?,
            }),
            2 => Err(TransferLeaderError::LogNotFlushed {
                expected: option_log_id_read(r)?,
                actual: option_log_id_read(r)?,
            }),
            tag => return Err(invalid(format!("transfer response tag {tag}"))),
        })
    })
}

/// The first snapshot chunk's header: the sender's vote and the snapshot's metadata.
pub fn snapshot_header_bytes(vote: &Vote, meta: &SnapshotMeta) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    vote_encode(&mut out, vote);
    option_log_id_encode(&mut out, meta.last_log_id.as_ref());
    option_log_id_encode(&mut out, meta.last_membership.log_id().as_ref());
    membership_encode(&mut out, meta.last_membership.membership());
    out
}

/// # Errors
/// `InvalidData` for bytes that are not a snapshot header.
pub fn snapshot_header_decode(bytes: &[u8]) -> Result<(Vote, SnapshotMeta), io::Error> {
    exact(bytes, |r: &mut Reader<'_>| {
        let vote = vote_read(r)?;
        let last_log_id = option_log_id_read(r)?;
        let membership_log_id = option_log_id_read(r)?;
        let membership = membership_read(r)?;
        let last_membership = StoredMembership::new(membership_log_id, membership);
        Ok((vote, SnapshotMeta { last_log_id, last_membership }))
    })
}

pub fn snapshot_response_bytes(response: &SnapshotResponse<TypeConfig>) -> Vec<u8> {
    let mut out = Vec::with_capacity(17);
    vote_encode(&mut out, &response.vote);
    out
}

/// # Errors
/// `InvalidData` for bytes that are not a snapshot response.
pub fn snapshot_response_decode(bytes: &[u8]) -> Result<SnapshotResponse<TypeConfig>, io::Error> {
    exact(bytes, |r| Ok(SnapshotResponse::new(vote_read(r)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Entry, LedgerRequest, LogId};
    use ledger_sm::command::{Batch, Operation};
    use ledger_sm::types::Timestamp;
    use openraft::impls::leader_id_adv::LeaderId;
    use openraft::EntryPayload;

    fn log_id(term: u64, index: u64) -> LogId {
        LogId { leader_id: LeaderId { term, node_id: 2 }, index }
    }

    fn request() -> AppendEntriesRequest<TypeConfig> {
        let vote = Vote { leader_id: LeaderId { term: 3, node_id: 2 }, committed: true };
        let batch = Batch { now: Timestamp(9), operation: Operation::Tick };
        let entries = vec![
            Entry { log_id: log_id(3, 5), payload: EntryPayload::Blank },
            Entry { log_id: log_id(3, 6), payload: EntryPayload::Normal(LedgerRequest(batch)) },
        ];
        AppendEntriesRequest {
            vote,
            prev_log_id: Some(log_id(2, 4)),
            entries,
            leader_commit: Some(log_id(2, 4)),
        }
    }

    #[test]
    fn messages_round_trip() {
        let rpc = request();
        let back = append_request_decode(&append_request_bytes(&rpc)).unwrap();
        assert_eq!(append_request_bytes(&back), append_request_bytes(&rpc));
        for response in [
            AppendEntriesResponse::Success,
            AppendEntriesResponse::PartialSuccess(Some(log_id(1, 1))),
            AppendEntriesResponse::Conflict,
            AppendEntriesResponse::HigherVote(rpc.vote),
        ] {
            assert_eq!(
                append_response_decode(&append_response_bytes(&response)).unwrap(),
                response
            );
        }
        let vote = VoteRequest { vote: rpc.vote, last_log_id: None, leadership_transfer: true };
        let back = vote_request_decode(&vote_request_bytes(&vote)).unwrap();
        assert_eq!((back.vote, back.last_log_id, back.leadership_transfer), (rpc.vote, None, true));
        let transfer = TransferLeaderRequest::new(rpc.vote, 3, Some(log_id(3, 6)));
        let back = transfer_request_decode(&transfer_request_bytes(&transfer)).unwrap();
        assert_eq!((back.to_node_id(), back.last_log_id()), (&3, Some(&log_id(3, 6))));
    }

    #[test]
    fn damaged_messages_are_errors() {
        let bytes = append_request_bytes(&request());
        for cut in 0..bytes.len() {
            assert!(append_request_decode(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
        let mut huge = bytes[..17 + 25 + 25].to_vec();
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(append_request_decode(&huge).is_err());
        let mut trailing = bytes;
        trailing.push(0);
        assert!(append_request_decode(&trailing).is_err());
        assert!(append_response_decode(&[9]).is_err());
        assert!(transfer_response_decode(&[3]).is_err());
    }
}
