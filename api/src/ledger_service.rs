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
use storage::{Kv, StorageError, Store};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::convert::{self, u128_of, FieldError};
use crate::proto::ledger as pb;
use crate::proto::ledger::ledger_client::LedgerClient;

/// Marks a request a follower forwarded, so the leader never forwards it again.
pub const FORWARDED: &str = "x-ledger-forwarded";
const GRPC_TIMEOUT: &str = "grpc-timeout";
const AUTHORIZATION: &str = "authorization";
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

fn query_status(error: query::QueryError<StorageError>) -> Status {
    match error {
        query::QueryError::Store(e @ StorageError::Corrupted { .. }) => Status::unavailable(
            format!("this node found damaged data and is stopping ({e}); ask another node"),
        ),
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

/// Converts every event of a request, or refuses the request naming the first bad field.
fn convert_all<P, T>(
    events: &[P],
    what: &str,
    convert: impl Fn(&P, usize) -> Result<T, FieldError>,
) -> Result<Vec<T>, Status> {
    check_count(events.len(), what)?;
    events
        .iter()
        .enumerate()
        .map(|(i, e)| convert(e, i))
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(&e))
}

type Forwarded<Rep> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<Rep>, Status>> + Send>>;

impl<K: Kv + 'static> LedgerService<K> {
    /// A failed query as the caller sees it. Damaged data halts this node: it must not go on
    /// serving, voting or replicating from it.
    fn query_status(&self, error: query::QueryError<StorageError>) -> Status {
        if let query::QueryError::Store(e @ StorageError::Corrupted { .. }) = &error {
            self.node.halt(format!("a read found damaged data: {e}"));
        }
        query_status(error)
    }

    /// Waits until this node's store may answer a read as fresh as `read` asks.
    async fn barrier(&self, read: Option<&pb::ReadConsistency>) -> Result<&Store<K>, Status> {
        self.node.read_barrier(consistency(read)).await.map_err(|e| write_status(&e))?;
        Ok(self.node.store().as_ref())
    }

    /// Applies `operation` through this node's raft, or — on a follower, for a request not
    /// forwarded already — sends `request` once to the leader with `forward` and relays its
    /// answer. `reply` turns the ledger's results into the response.
    async fn write<Req, Rep>(
        &self,
        request: Request<Req>,
        operation: Operation,
        reply: impl FnOnce(Results) -> Result<Rep, Results>,
        forward: impl FnOnce(LedgerClient<Channel>, Request<Req>) -> Forwarded<Rep>,
    ) -> Result<Response<Rep>, Status> {
        let error = match self.node.write(operation).await {
            Ok(results) => return reply(results).map(Response::new).map_err(|r| unexpected(&r)),
            Err(error) => error,
        };
        let WriteError::NotLeader(Some((_, address))) = &error else {
            return Err(write_status(&error));
        };
        let address = address.clone();
        if request.metadata().contains_key(FORWARDED) {
            return Err(write_status(&error));
        }
        let channel = self.channels.channel(&address).map_err(Status::unavailable)?;
        let deadline = request.metadata().get(GRPC_TIMEOUT).cloned();
        let authorization = request.metadata().get(AUTHORIZATION).cloned();
        let mut request = Request::new(request.into_inner());
        // The leader checks the caller's own credentials again.
        if let Some(authorization) = authorization {
            request.metadata_mut().insert(AUTHORIZATION, authorization);
        }
        request.metadata_mut().insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
        // The client's deadline travels with the request; without one, ours applies.
        match deadline {
            Some(deadline) => {
                request.metadata_mut().insert(GRPC_TIMEOUT, deadline);
            }
            None => request.set_timeout(FORWARD_TIMEOUT),
        }
        let client = LedgerClient::new(channel)
            .max_decoding_message_size(crate::MESSAGE_BYTES_MAX)
            .max_encoding_message_size(crate::MESSAGE_BYTES_MAX);
        // A connection that broke under the forwarded call surfaces as `Unknown`; the leader
        // itself never answers with it. Say what the caller can do: retry with the same ids.
        forward(client, request).await.map_err(|status| match status.code() {
            tonic::Code::Unknown => Status::unavailable(format!(
                "forwarding to the leader at {address}: {}; the write may or may not have been \
                 applied: retry it with the same ids",
                status.message()
            )),
            _ => status,
        })
    }

    /// A convenience call: the one transfer it stands for, applied like any other.
    async fn single<Req>(
        &self,
        request: Request<Req>,
        transfer: &pb::NewTransfer,
        forward: impl FnOnce(LedgerClient<Channel>, Request<Req>) -> Forwarded<pb::TransferResult>,
    ) -> Result<Response<pb::TransferResult>, Status> {
        let transfer = convert::new_transfer(transfer, "transfer").map_err(|e| invalid(&e))?;
        let id = transfer.id;
        let reply = |results| match results {
            Results::CreateTransfers(r) if r.len() == 1 => Ok(convert::transfer_result(&r[0], id)),
            other => Err(other),
        };
        self.write(request, Operation::CreateTransfers(vec![transfer]), reply, forward).await
    }
}

#[tonic::async_trait]
impl<K: Kv + 'static> pb::ledger_server::Ledger for LedgerService<K> {
    async fn create_assets(
        &self,
        request: Request<pb::CreateAssetsRequest>,
    ) -> Result<Response<pb::CreateAssetsReply>, Status> {
        let assets = convert_all(&request.get_ref().assets, "assets", convert::new_asset)?;
        let reply = |results| match results {
            Results::CreateAssets(r) => Ok(pb::CreateAssetsReply {
                results: r.into_iter().map(convert::create_asset_result).collect(),
            }),
            other => Err(other),
        };
        let forward = |mut c: LedgerClient<Channel>, r| -> Forwarded<_> {
            Box::pin(async move { c.create_assets(r).await })
        };
        self.write(request, Operation::CreateAssets(assets), reply, forward).await
    }

    async fn create_accounts(
        &self,
        request: Request<pb::CreateAccountsRequest>,
    ) -> Result<Response<pb::CreateAccountsReply>, Status> {
        let accounts = convert_all(&request.get_ref().accounts, "accounts", |a, i| {
            convert::new_account(a, &format!("accounts[{i}]"))
        })?;
        let reply = |results| match results {
            Results::CreateAccounts(r) => Ok(pb::CreateAccountsReply {
                results: r.iter().map(convert::account_result).collect(),
            }),
            other => Err(other),
        };
        let forward = |mut c: LedgerClient<Channel>, r| -> Forwarded<_> {
            Box::pin(async move { c.create_accounts(r).await })
        };
        self.write(request, Operation::CreateAccounts(accounts), reply, forward).await
    }

    async fn create_transfers(
        &self,
        request: Request<pb::CreateTransfersRequest>,
    ) -> Result<Response<pb::CreateTransfersReply>, Status> {
        let transfers = convert_all(&request.get_ref().transfers, "transfers", |t, i| {
            convert::new_transfer(t, &format!("transfers[{i}]"))
        })?;
        let ids: Vec<TransferId> = transfers.iter().map(|t| t.id).collect();
        let reply = |results| match results {
            Results::CreateTransfers(r) if r.len() == ids.len() => Ok(pb::CreateTransfersReply {
                results: r
                    .iter()
                    .zip(ids)
                    .map(|(outcome, id)| convert::transfer_result(outcome, id))
                    .collect(),
            }),
            other => Err(other),
        };
        let forward = |mut c: LedgerClient<Channel>, r| -> Forwarded<_> {
            Box::pin(async move { c.create_transfers(r).await })
        };
        self.write(request, Operation::CreateTransfers(transfers), reply, forward).await
    }

    async fn change_accounts(
        &self,
        request: Request<pb::ChangeAccountsRequest>,
    ) -> Result<Response<pb::ChangeAccountsReply>, Status> {
        let changes = convert_all(&request.get_ref().changes, "changes", convert::account_change)?;
        let reply = |results| match results {
            Results::ChangeAccounts(r) => Ok(pb::ChangeAccountsReply {
                results: r.iter().map(convert::change_result).collect(),
            }),
            other => Err(other),
        };
        let forward = |mut c: LedgerClient<Channel>, r| -> Forwarded<_> {
            Box::pin(async move { c.change_accounts(r).await })
        };
        self.write(request, Operation::ChangeAccounts(changes), reply, forward).await
    }

    async fn issue_gift_cards(
        &self,
        request: Request<pb::IssueGiftCardsRequest>,
    ) -> Result<Response<pb::IssueGiftCardsReply>, Status> {
        let cards = convert_all(&request.get_ref().cards, "cards", convert::gift_card_issue)?;
        let reply = |results| match results {
            Results::IssueGiftCards(r) => Ok(pb::IssueGiftCardsReply {
                results: r.iter().map(convert::gift_card_result).collect(),
            }),
            other => Err(other),
        };
        let forward = |mut c: LedgerClient<Channel>, r| -> Forwarded<_> {
            Box::pin(async move { c.issue_gift_cards(r).await })
        };
        self.write(request, Operation::IssueGiftCards(cards), reply, forward).await
    }

    async fn lookup_accounts(
        &self,
        request: Request<pb::LookupAccountsRequest>,
    ) -> Result<Response<pb::LookupAccountsReply>, Status> {
        let request = request.into_inner();
        let ids: Vec<AccountId> =
            request.ids.iter().map(|id| AccountId(u128_of(Some(id)))).collect();
        let store = self.barrier(request.consistency.as_ref()).await?;
        let found = query::lookup_accounts(store, &ids).map_err(|e| self.query_status(e))?;
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
        let store = self.barrier(request.consistency.as_ref()).await?;
        let found = query::lookup_transfers(store, &ids).map_err(|e| self.query_status(e))?;
        Ok(Response::new(pb::LookupTransfersReply {
            transfers: found.iter().flatten().map(convert::transfer).collect(),
        }))
    }
    async fn erase_accounts(
        &self,
        request: Request<pb::EraseAccountsRequest>,
    ) -> Result<Response<pb::EraseAccountsReply>, Status> {
        let accounts = convert_all(&request.get_ref().accounts, "accounts", |id, _| {
            Ok::<_, FieldError>(AccountId(u128_of(Some(id))))
        })?;
        let reply = |results| match results {
            Results::Erase(r) => Ok(pb::EraseAccountsReply {
                results: r.into_iter().map(convert::erase_result).collect(),
            }),
            other => Err(other),
        };
        let forward = |mut c: LedgerClient<Channel>, r| -> Forwarded<_> {
            Box::pin(async move { c.erase_accounts(r).await })
        };
        self.write(request, Operation::Erase(accounts), reply, forward).await
    }

    async fn get_account_transfers(
        &self,
        request: Request<pb::AccountFilter>,
    ) -> Result<Response<pb::GetAccountTransfersReply>, Status> {
        let filter = request.into_inner();
        let store = self.barrier(filter.consistency.as_ref()).await?;
        let transfers = query::account_transfers(store, &convert::account_filter(&filter))
            .map_err(|e| self.query_status(e))?;
        Ok(Response::new(pb::GetAccountTransfersReply {
            transfers: transfers.iter().map(convert::transfer).collect(),
        }))
    }

    async fn get_balance_history(
        &self,
        request: Request<pb::AccountFilter>,
    ) -> Result<Response<pb::GetBalanceHistoryReply>, Status> {
        let filter = request.into_inner();
        let store = self.barrier(filter.consistency.as_ref()).await?;
        let entries = query::balance_history(store, &convert::account_filter(&filter))
            .map_err(|e| self.query_status(e))?;
        Ok(Response::new(pb::GetBalanceHistoryReply {
            entries: entries.iter().map(convert::balance_entry).collect(),
        }))
    }

    async fn get_account_lots(
        &self,
        request: Request<pb::GetAccountLotsRequest>,
    ) -> Result<Response<pb::GetAccountLotsReply>, Status> {
        let request = request.into_inner();
        let store = self.barrier(request.consistency.as_ref()).await?;
        let account = AccountId(u128_of(request.account.as_ref()));
        let lots = query::account_lots(store, account).map_err(|e| self.query_status(e))?;
        Ok(Response::new(pb::GetAccountLotsReply { lots: lots.iter().map(convert::lot).collect() }))
    }

    async fn get_gift_card(
        &self,
        request: Request<pb::GetGiftCardRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let request = request.into_inner();
        let store = self.barrier(request.consistency.as_ref()).await?;
        let hash = convert::gift_card_code_hash(&request.code);
        match query::gift_card(store, &hash).map_err(|e| self.query_status(e))? {
            Some(card) if !hash.is_zero() => Ok(Response::new(convert::account(&card))),
            _ => Err(Status::not_found("no gift card with this code")),
        }
    }

    async fn earn(
        &self,
        request: Request<pb::EarnRequest>,
    ) -> Result<Response<pb::TransferResult>, Status> {
        let transfer = convert::earn(request.get_ref());
        let forward = |mut c: LedgerClient<Channel>, r| -> Forwarded<_> {
            Box::pin(async move { c.earn(r).await })
        };
        self.single(request, &transfer, forward).await
    }

    async fn burn(
        &self,
        request: Request<pb::BurnRequest>,
    ) -> Result<Response<pb::TransferResult>, Status> {
        let transfer = convert::burn(request.get_ref());
        let forward = |mut c: LedgerClient<Channel>, r| -> Forwarded<_> {
            Box::pin(async move { c.burn(r).await })
        };
        self.single(request, &transfer, forward).await
    }

    async fn hold(
        &self,
        request: Request<pb::HoldRequest>,
    ) -> Result<Response<pb::TransferResult>, Status> {
        let transfer = convert::hold(request.get_ref());
        let forward = |mut c: LedgerClient<Channel>, r| -> Forwarded<_> {
            Box::pin(async move { c.hold(r).await })
        };
        self.single(request, &transfer, forward).await
    }

    async fn capture(
        &self,
        request: Request<pb::CaptureRequest>,
    ) -> Result<Response<pb::TransferResult>, Status> {
        let transfer = convert::capture(request.get_ref());
        let forward = |mut c: LedgerClient<Channel>, r| -> Forwarded<_> {
            Box::pin(async move { c.capture(r).await })
        };
        self.single(request, &transfer, forward).await
    }

    async fn void(
        &self,
        request: Request<pb::VoidRequest>,
    ) -> Result<Response<pb::TransferResult>, Status> {
        let transfer = convert::void(request.get_ref());
        let forward = |mut c: LedgerClient<Channel>, r| -> Forwarded<_> {
            Box::pin(async move { c.void(r).await })
        };
        self.single(request, &transfer, forward).await
    }

    async fn refund(
        &self,
        request: Request<pb::RefundRequest>,
    ) -> Result<Response<pb::TransferResult>, Status> {
        let transfer = convert::refund(request.get_ref());
        let forward = |mut c: LedgerClient<Channel>, r| -> Forwarded<_> {
            Box::pin(async move { c.refund(r).await })
        };
        self.single(request, &transfer, forward).await
    }
}
