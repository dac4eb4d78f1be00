//! The operator and the auditor, clients of the admin API.
//!
//! The operator transfers leadership and replaces nodes (remove the member, wipe its disk, add
//! it back under a new id as a learner, promote it) while the workload runs — the runbook for a
//! corrupted or lost node. Each step is retried until it takes: the admin operations are safe to
//! re-run. The auditor waits for the faults to end, requires every node to converge, then reads
//! every account once more, linearizably, into the history: every acknowledged write must
//! still be there.

use std::rc::Rc;
use std::time::Duration;

use api::proto::ledger as pb;

use super::net::{admin, dialer, sim_now};
use super::workload::{client_of, record, WALLETS};
use super::{host_name, World, CONVERGE_WITHIN, PORT};
use crate::bank::Op;
use crate::ledger::ledger_id;
use crate::rng::Rng;

/// The auditor's client number in the history.
const AUDITOR: u32 = 1_000;
const RETRY: Duration = Duration::from_millis(200);
/// Each final read retries for `ClientConfig::retry_for` (3 s) before it counts as an attempt.
const FINAL_READ_ATTEMPTS: u32 = 3;

/// What the driver asks the operator to do.
#[derive(Clone, Copy, Debug)]
pub(super) enum Request {
    TransferLeader,
    Replace {
        host: usize,
    },
    /// Reads every account on one node: damaged data there makes it halt.
    Scrub {
        host: usize,
    },
}

pub(super) async fn operator(mut rng: Rng, world: Rc<World>) -> turmoil::Result {
    while !world.finished.get() {
        let request = world.requests.borrow_mut().pop_front();
        let Some(request) = request else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        match request {
            Request::TransferLeader => transfer_leader(&mut rng, &world).await,
            Request::Replace { host } => replace(host, &mut rng, &world).await,
            Request::Scrub { host } => scrub(host, &world).await,
        }
        // Busy while anything is queued (the driver may have queued more meanwhile).
        world.operator_busy.set(!world.requests.borrow().is_empty());
    }
    Ok(())
}

/// The node that says it leads, with the highest term of those that do: its host and status.
async fn leader(world: &World) -> Option<(usize, pb::StatusReply)> {
    let mut found: Option<(usize, pb::StatusReply)> = None;
    for host in 0..world.nodes {
        let Ok(status) = admin(&host_name(host)).status(pb::StatusRequest {}).await else {
            continue;
        };
        let status = status.into_inner();
        if status.role == "leader" && found.as_ref().is_none_or(|(_, f)| status.term > f.term) {
            found = Some((host, status));
        }
    }
    found
}

/// Hands leadership to another voter, chosen by the seed. One attempt: a transfer that does
/// not take is part of the fault.
async fn transfer_leader(rng: &mut Rng, world: &World) {
    for _ in 0..10 {
        let Some((host, status)) = leader(world).await else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        let voters: Vec<u64> =
            status.members.iter().filter(|m| m.voter && m.id != status.id).map(|m| m.id).collect();
        if voters.is_empty() {
            return;
        }
        let to = voters[rng.index(voters.len())];
        let request = pb::TransferLeaderRequest { to };
        let outcome = admin(&host_name(host)).transfer_leader(request).await;
        let said = outcome.map_or_else(|s| s.message().to_owned(), |_| "done".to_owned());
        world.log(format!("operator: leadership {} -> {to}: {said}", status.id));
        return;
    }
}

/// Reads every account on `host` itself (a bounded-staleness read a follower serves), as an
/// audit would: a corrupted row is found now, not when a later fault has taken another node.
async fn scrub(host: usize, world: &World) {
    let endpoint =
        tonic::transport::Endpoint::from_shared(format!("http://{}:{PORT}", host_name(host)))
            .expect("a valid address")
            .timeout(Duration::from_secs(5));
    let mut ledger = pb::ledger_client::LedgerClient::new((dialer().0)(endpoint));
    let ids = (0..2 + WALLETS).filter_map(|a| api::convert::pb_u128(ledger_id(a))).collect();
    let consistency = Some(pb::ReadConsistency { max_staleness_ms: 60_000 });
    let read = ledger.lookup_accounts(pb::LookupAccountsRequest { ids, consistency }).await;
    let said = read.map_or_else(|s| s.message().to_owned(), |_| "clean".to_owned());
    world.log(format!("operator: scrub of {}: {said}", host_name(host)));
}

/// Replaces the node on `host`: out of the membership, a blank disk and a new id, back in as a
/// learner, then a voter.
async fn replace(host: usize, rng: &mut Rng, world: &World) {
    let old = world.ids.borrow()[host];
    world.log(format!("operator: replacing node {old} on {}", host_name(host)));
    loop {
        let Some((leads, status)) = leader(world).await else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        if !status.members.iter().any(|m| m.id == old) {
            break;
        }
        if status.id == old {
            transfer_leader(rng, world).await;
            continue;
        }
        let removed = admin(&host_name(leads)).remove(pb::RemoveRequest { id: old }).await;
        if let Err(refused) = removed {
            world.log(format!("operator: remove {old}: {}", refused.message()));
            tokio::time::sleep(RETRY).await;
        }
    }
    let new = world.next_id.get();
    world.next_id.set(new + 1);
    world.ids.borrow_mut()[host] = new;
    world.wipe.borrow_mut()[host] = true;
    world.reboots.borrow_mut().push(host);
    let address = format!("{}:{PORT}", host_name(host));
    let mut learner = false;
    loop {
        let Some((leads, status)) = leader(world).await else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        let mut admin = admin(&host_name(leads));
        let outcome = if learner {
            admin.promote(pb::PromoteRequest { id: new }).await
        } else {
            admin.add_learner(pb::AddLearnerRequest { id: new, address: address.clone() }).await
        };
        match outcome {
            Ok(_) if learner => break,
            Ok(_) => learner = true,
            Err(refused) => {
                let step = if learner { "promote" } else { "add learner" };
                world.log(format!(
                    "operator: {step} {new} (via {}): {}",
                    status.id,
                    refused.message()
                ));
                tokio::time::sleep(RETRY).await;
            }
        }
    }
    world.log(format!("operator: node {new} on {} replaced node {old}", host_name(host)));
}

/// The liveness check: once the clients are done and the faults healed, every node must reach
/// one applied index and one state hash in time; then the final reads.
pub(super) async fn auditor(clients: usize, world: Rc<World>) -> turmoil::Result {
    while world.clients_done.get() < clients || !world.healed.get() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = sim_now();
    let mut last = Vec::new();
    let mut settled = false;
    while Duration::from_nanos(sim_now() - started) < CONVERGE_WITHIN {
        let mut seen = Vec::new();
        for host in 0..world.nodes {
            if let Ok(status) = admin(&host_name(host)).status(pb::StatusRequest {}).await {
                let status = status.into_inner();
                seen.push((status.applied, status.committed, status.state_hash));
            }
        }
        settled = seen.len() == world.nodes
            && seen.iter().all(|s| s.0.is_some() && s.0 == s.1 && s.0 == seen[0].0)
            && seen.iter().all(|s| s.2 == seen[0].2);
        if settled {
            *world.state_hashes.borrow_mut() = seen.into_iter().map(|s| s.2).collect();
            break;
        }
        last = seen;
        tokio::time::sleep(RETRY).await;
    }
    if !settled {
        return Err(format!("liveness: no convergence within {CONVERGE_WITHIN:?}: {last:?}").into());
    }
    let api = client_of(&world);
    for account in 0..2 + WALLETS {
        let mut attempts = 0;
        loop {
            let read = record(&api, AUDITOR, Op::Read(account), false).await?;
            let gave_up = read.gave_up.clone();
            world.history.borrow_mut().push(read);
            attempts += 1;
            let Some(why) = gave_up else { break };
            if attempts == FINAL_READ_ATTEMPTS {
                let failed =
                    format!("liveness: {attempts} final reads of account {account} failed: {why}");
                return Err(failed.into());
            }
        }
    }
    world.finished.set(true);
    Ok(())
}
