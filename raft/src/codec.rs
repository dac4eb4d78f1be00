//! Our encoding of openraft's values (log ids, votes, memberships, entries, the applied marker).
//! Explicit little-endian layouts, so stored logs survive openraft upgrades that change its serde
//! derives. Decoding is total: damaged bytes are an `InvalidData` error, never a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use ledger_sm::decode::{Decode, Reader};
use ledger_sm::encode::Encode;
use openraft::impls::leader_id_adv::LeaderId;
use openraft::impls::BasicNode;
use openraft::EntryPayload;

use crate::{Entry, LedgerRequest, LogId, Membership, StoredMembership, Vote};

/// Members or nodes in one membership: bounds the decoder's allocations.
const MEMBERSHIP_NODES_MAX: u32 = 1_024;
const ADDRESS_BYTES_MAX: usize = 1_024;

pub(crate) fn invalid(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("raft codec: {what}"))
}

pub(crate) fn le(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

pub fn log_id_encode(out: &mut Vec<u8>, log_id: &LogId) {
    le(out, log_id.leader_id.term);
    le(out, log_id.leader_id.node_id);
    le(out, log_id.index);
}

pub(crate) fn log_id_read(r: &mut Reader<'_>) -> Result<LogId, io::Error> {
    let (term, node_id, index) =
        (r.u64().map_err(invalid)?, r.u64().map_err(invalid)?, r.u64().map_err(invalid)?);
    Ok(LogId { leader_id: LeaderId { term, node_id }, index })
}

pub(crate) fn option_log_id_encode(out: &mut Vec<u8>, log_id: Option<&LogId>) {
    match log_id {
        None => out.push(0),
        Some(log_id) => {
            out.push(1);
            log_id_encode(out, log_id);
        }
    }
}

pub(crate) fn option_log_id_read(r: &mut Reader<'_>) -> Result<Option<LogId>, io::Error> {
    match r.u8().map_err(invalid)? {
        0 => Ok(None),
        1 => Ok(Some(log_id_read(r)?)),
        tag => Err(invalid(format!("option tag {tag}"))),
    }
}

/// # Errors
/// `InvalidData` for bytes that are not a log id.
pub fn log_id_decode(bytes: &[u8]) -> Result<LogId, io::Error> {
    exact(bytes, log_id_read)
}

#[must_use]
pub fn log_id_bytes(log_id: &LogId) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    log_id_encode(&mut out, log_id);
    out
}

pub(crate) fn vote_encode(out: &mut Vec<u8>, vote: &Vote) {
    le(out, vote.leader_id.term);
    le(out, vote.leader_id.node_id);
    out.push(u8::from(vote.committed));
}

pub(crate) fn vote_read(r: &mut Reader<'_>) -> Result<Vote, io::Error> {
    let leader_id =
        LeaderId { term: r.u64().map_err(invalid)?, node_id: r.u64().map_err(invalid)? };
    let committed = bool_read(r)?;
    Ok(Vote { leader_id, committed })
}

pub(crate) fn bool_read(r: &mut Reader<'_>) -> Result<bool, io::Error> {
    match r.u8().map_err(invalid)? {
        0 => Ok(false),
        1 => Ok(true),
        tag => Err(invalid(format!("boolean {tag}"))),
    }
}

#[must_use]
pub fn vote_bytes(vote: &Vote) -> Vec<u8> {
    let mut out = Vec::with_capacity(17);
    vote_encode(&mut out, vote);
    out
}

/// # Errors
/// `InvalidData` for bytes that are not a vote.
pub fn vote_decode(bytes: &[u8]) -> Result<Vote, io::Error> {
    exact(bytes, vote_read)
}

pub(crate) fn membership_encode(out: &mut Vec<u8>, membership: &Membership) {
    let configs = membership.get_joint_config();
    out.extend_from_slice(&u32::try_from(configs.len()).expect("few configs").to_le_bytes());
    for config in configs {
        out.extend_from_slice(&u32::try_from(config.len()).expect("few members").to_le_bytes());
        config.iter().for_each(|id| le(out, *id));
    }
    let nodes: Vec<_> = membership.nodes().collect();
    out.extend_from_slice(&u32::try_from(nodes.len()).expect("few nodes").to_le_bytes());
    for (id, node) in nodes {
        le(out, *id);
        le(out, node.addr.len() as u64);
        out.extend_from_slice(node.addr.as_bytes());
    }
}

fn count(r: &mut Reader<'_>) -> Result<u32, io::Error> {
    let count = r.u32().map_err(invalid)?;
    if count > MEMBERSHIP_NODES_MAX {
        return Err(invalid(format!("{count} members")));
    }
    Ok(count)
}

pub(crate) fn membership_read(r: &mut Reader<'_>) -> Result<Membership, io::Error> {
    let configs = (0..count(r)?)
        .map(|_| {
            (0..count(r)?).map(|_| r.u64().map_err(invalid)).collect::<Result<BTreeSet<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut nodes = BTreeMap::new();
    for _ in 0..count(r)? {
        let id = r.u64().map_err(invalid)?;
        let address = r.bytes().map_err(invalid)?;
        if address.len() > ADDRESS_BYTES_MAX {
            return Err(invalid("address too long"));
        }
        let addr = String::from_utf8(address).map_err(|_| invalid("address not utf-8"))?;
        nodes.insert(id, BasicNode { addr });
    }
    Membership::new(configs, nodes).map_err(invalid)
}

/// The applied marker stored with the state: the last applied log id and the membership.
#[must_use]
pub fn applied_bytes(last_applied: Option<&LogId>, membership: &StoredMembership) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    option_log_id_encode(&mut out, last_applied);
    option_log_id_encode(&mut out, membership.log_id().as_ref());
    membership_encode(&mut out, membership.membership());
    out
}

/// # Errors
/// `InvalidData` for bytes that are not an applied marker.
pub fn applied_decode(bytes: &[u8]) -> Result<(Option<LogId>, StoredMembership), io::Error> {
    exact(bytes, |r| {
        let last_applied = option_log_id_read(r)?;
        let membership_log_id = option_log_id_read(r)?;
        let membership = membership_read(r)?;
        Ok((last_applied, StoredMembership::new(membership_log_id, membership)))
    })
}

pub(crate) fn entry_encode(out: &mut Vec<u8>, entry: &Entry) {
    log_id_encode(out, &entry.log_id);
    match &entry.payload {
        EntryPayload::Blank => out.push(0),
        EntryPayload::Normal(LedgerRequest(batch)) => {
            out.push(1);
            batch.encode(out);
        }
        EntryPayload::Membership(membership) => {
            out.push(2);
            membership_encode(out, membership);
        }
    }
}

pub(crate) fn entry_read(r: &mut Reader<'_>) -> Result<Entry, io::Error> {
    let log_id = log_id_read(r)?;
    let payload = match r.u8().map_err(invalid)? {
        0 => EntryPayload::Blank,
        1 => EntryPayload::Normal(LedgerRequest(
            ledger_sm::command::Batch::decode(r).map_err(invalid)?,
        )),
        2 => EntryPayload::Membership(membership_read(r)?),
        tag => return Err(invalid(format!("payload tag {tag}"))),
    };
    Ok(Entry { log_id, payload })
}

#[must_use]
pub fn entry_bytes(entry: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    entry_encode(&mut out, entry);
    out
}

/// # Errors
/// `InvalidData` for bytes that are not an entry.
pub fn entry_decode(bytes: &[u8]) -> Result<Entry, io::Error> {
    exact(bytes, entry_read)
}

/// Runs `read` over all of `bytes`; leftovers are an error.
pub(crate) fn exact<T>(
    bytes: &[u8],
    read: impl FnOnce(&mut Reader<'_>) -> Result<T, io::Error>,
) -> Result<T, io::Error> {
    let mut reader = Reader::new(bytes);
    let value = read(&mut reader)?;
    if !reader.is_empty() {
        return Err(invalid("trailing bytes"));
    }
    Ok(value)
}
