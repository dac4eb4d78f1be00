//! The `Ledger` gRPC service. Writes go to the leader: a follower forwards the request once
//! (marked, so it never loops) and relays the leader's answer; reads pass a read barrier
//! (linearizable by default) and are served from this node's store.

use std::time::Duration;

use ledger_sm::command::Operation;
use ledger_sm::constants::BATCH_EVENTS_MAX;
use ledger_sm::query;
use ledger_sm::result::Results;
use ledger_sm::types::{AccountId, TransferId};
use raft::network::Channels;
use raft::{Consistency, Node, WriteError};
use storage::Kv;
use tonic::{Request, Response, Status};

use crate::convert::{self, u128_of, FieldError};
use crate::proto::ledger as pb;
use crate::proto::ledger::ledger_client::LedgerClient;

/// Marks a request a follower forwarded, so the leader never forwards it again.
pub const FORWARDED: &str = "x-ledger-forwarded";
const GRPC_TIMEOUT: &str = "grpc-timeout";
/// The deadline of a forwarded write whose client set none.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);
/// On a refusal for want of the leader: the leader's address, when known.
pub const LEADER: &str = "x-ledger-leader";

#[derive(Debug)]
pub struct LedgerService<K: Kv + 'static> {
    node: Node<K>,
    channels: Channels,
}

impl<K: Kv + 'static> LedgerService<K> {
    #[must_use]
    pub fn new(node: Node<K>, channels: Channels) -> Self {
        Self { node, channels }
    }
}

fn invalid(error: &FieldError) -> Status {
    Status::invalid_argument(error.to_string())
}

/// The gRPC status of a write that did not apply, with the leader's address when known.
pub fn write_status(error: &WriteError) -> Status {
    let mut status = match error {
        WriteError::NotLeader(_) | WriteError::Unavailable(_) => {
            Status::unavailable(error.to_string())
        }
        WriteError::Overloaded => Status::resource_exhausted(error.to_string()),
    };
    if let WriteError::NotLeader(Some((_, address))) = error {
        if let Ok(value) = address.parse() {
            status.metadata_mut().insert(LEADER, value);
        }
    }
    status
}

fn check_count(count: usize, what: &str) -> Result<(), Status> {
    if count == 0 {
        return Err(Status::invalid_argument(format!("{what}: at least one is required")));
    }
    if count > BATCH_EVENTS_MAX as usize {
        return Err(Status::invalid_argument(format!(
            "{what}: {count} in one request, at most {BATCH_EVENTS_MAX}"
        )));
    }
    Ok(())
}

fn consistency(read: Option<&pb::ReadConsistency>) -> Consistency {
    match read.map_or(0, |r| r.max_staleness_ms) {
        0 => Consistency::Linearizable,
        ms => Consistency::BoundedStaleness { max: Duration::from_millis(u64::from(ms)) },
    }
}

fn query_status<E: std::fmt::Display + std::fmt::Debug>(error: query::QueryError<E>) -> Status {
    match error {
        query::QueryError::Store(e) => Status::internal(format!("storage: {e}")),
        query::QueryError::TooManyIds => Status::invalid_argument(format!(
            "ids: at most {} in one request",
            ledger_sm::constants::QUERY_LIMIT_MAX
        )),
        other => Status::invalid_argument(convert::snake(&format!("{other:?}"))),
    }
}

fn unexpected(results: &Results) -> Status {
    Status::internal(format!("ledger answered {} results of another kind", results.len()))
}

macro_rules! forward {
    ($self:ident, $request:ident, $error:ident, $method:ident) => {{
        let forwarded = $request.metadata().contains_key(FORWARDED);
        match (&$error, forwarded) {
            (WriteError::NotLeader(Some((_, address))), false) => {
                let channel = $self.channels.channel(address).map_err(Status::unavailable)?;
                let deadline = $request.metadata().get(GRPC_TIMEOUT).cloned();
                let mut request = Request::new($request.into_inner());
                request
                    .metadata_mut()
                    .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
                // The client's deadline travels with the request; without one, ours applies.
                match deadline {
                    Some(deadline) => {
                        request.metadata_mut().insert(GRPC_TIMEOUT, deadline);
                    }
                    None => request.set_timeout(FORWARD_TIMEOUT),
                }
                return LedgerClient::new(channel)
                    .max_decoding_message_size(crate::MESSAGE_BYTES_MAX)
                    .max_encoding_message_size(crate::MESSAGE_BYTES_MAX)
                    .$method(request)
                    .await;
            }
            _ => return Err(write_status(&$error)),
        }
    }};
}

#[tonic::async_trait]
impl<K: Kv + 'static> pb::ledger_server::Ledger for LedgerService<K> {
    async fn create_assets(
        &self,
        request: Request<pb::CreateAssetsRequest>,
    ) -> Result<Response<pb::CreateAssetsReply>, Status> {
        let assets = &request.get_ref().assets;
        check_count(assets.len(), "assets")?;
        let assets = assets
            .iter()
            .enumerate()
            .map(|(i, a)| convert::new_asset(a, i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(&e))?;
        match self.node.write(Operation::CreateAssets(assets)).await {
            Ok(Results::CreateAssets(results)) => Ok(Response::new(pb::CreateAssetsReply {
                results: results.into_iter().map(convert::create_asset_result).collect(),
            })),
            Ok(other) => Err(unexpected(&other)),
            Err(error) => forward!(self, request, error, create_assets),
        }
    }

    async fn create_accounts(
        &self,
        request: Request<pb::CreateAccountsRequest>,
    ) -> Result<Response<pb::CreateAccountsReply>, Status> {
        let accounts = &request.get_ref().accounts;
        check_count(accounts.len(), "accounts")?;
        let accounts = accounts
            .iter()
            .enumerate()
            .map(|(i, a)| convert::new_account(a, &format!("accounts[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(&e))?;
        match self.node.write(Operation::CreateAccounts(accounts)).await {
            Ok(Results::CreateAccounts(results)) => Ok(Response::new(pb::CreateAccountsReply {
                results: results.iter().map(convert::account_result).collect(),
            })),
            Ok(other) => Err(unexpected(&other)),
            Err(error) => forward!(self, request, error, create_accounts),
        }
    }

    async fn create_transfers(
        &self,
        request: Request<pb::CreateTransfersRequest>,
    ) -> Result<Response<pb::CreateTransfersReply>, Status> {
        let transfers = &request.get_ref().transfers;
        check_count(transfers.len(), "transfers")?;
        let transfers = transfers
            .iter()
            .enumerate()
            .map(|(i, t)| convert::new_transfer(t, i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(&e))?;
        match self.node.write(Operation::CreateTransfers(transfers)).await {
            Ok(Results::CreateTransfers(results)) => Ok(Response::new(pb::CreateTransfersReply {
                results: results.iter().map(convert::transfer_result).collect(),
            })),
            Ok(other) => Err(unexpected(&other)),
            Err(error) => forward!(self, request, error, create_transfers),
        }
    }

    async fn change_accounts(
        &self,
        request: Request<pb::ChangeAccountsRequest>,
    ) -> Result<Response<pb::ChangeAccountsReply>, Status> {
        let changes = &request.get_ref().changes;
        check_count(changes.len(), "changes")?;
        let changes = changes
            .iter()
            .enumerate()
            .map(|(i, c)| convert::account_change(c, i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(&e))?;
        match self.node.write(Operation::ChangeAccounts(changes)).await {
            Ok(Results::ChangeAccounts(results)) => Ok(Response::new(pb::ChangeAccountsReply {
                results: results.iter().map(convert::change_result).collect(),
            })),
            Ok(other) => Err(unexpected(&other)),
            Err(error) => forward!(self, request, error, change_accounts),
        }
    }

    async fn issue_gift_cards(
        &self,
        request: Request<pb::IssueGiftCardsRequest>,
    ) -> Result<Response<pb::IssueGiftCardsReply>, Status> {
        let cards = &request.get_ref().cards;
        check_count(cards.len(), "cards")?;
        let cards = cards
            .iter()
            .enumerate()
            .map(|(i, c)| convert::gift_card_issue(c, i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(&e))?;
        match self.node.write(Operation::IssueGiftCards(cards)).await {
            Ok(Results::IssueGiftCards(results)) => Ok(Response::new(pb::IssueGiftCardsReply {
                results: results.iter().map(convert::gift_card_result).collect(),
            })),
            Ok(other) => Err(unexpected(&other)),
            Err(error) => forward!(self, request, error, issue_gift_cards),
        }
    }

    async fn lookup_accounts(
        &self,
        request: Request<pb::LookupAccountsRequest>,
    ) -> Result<Response<pb::LookupAccountsReply>, Status> {
        let request = request.into_inner();
        let ids: Vec<AccountId> =
            request.ids.iter().map(|id| AccountId(u128_of(Some(id)))).collect();
        self.node
            .read_barrier(consistency(request.consistency.as_ref()))
            .await
            .map_err(|e| write_status(&e))?;
        let found =
            query::lookup_accounts(self.node.store().as_ref(), &ids).map_err(query_status)?;
        Ok(Response::new(pb::LookupAccountsReply {
            accounts: found.iter().flatten().map(convert::account).collect(),
        }))
    }

    async fn lookup_transfers(
        &self,
        request: Request<pb::LookupTransfersRequest>,
    ) -> Result<Response<pb::LookupTransfersReply>, Status> {
        let request = request.into_inner();
        let ids: Vec<TransferId> =
            request.ids.iter().map(|id| TransferId(u128_of(Some(id)))).collect();
        self.node
            .read_barrier(consistency(request.consistency.as_ref()))
            .await
            .map_err(|e| write_status(&e))?;
        let found =
            query::lookup_transfers(self.node.store().as_ref(), &ids).map_err(query_status)?;
        Ok(Response::new(pb::LookupTransfersReply {
            transfers: found.iter().flatten().map(convert::transfer).collect(),
        }))
    }
}
