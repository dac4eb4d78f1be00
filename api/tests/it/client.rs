//! `api::client` against a real cluster: it finds the leader from any node, fills zero ids
//! once so retries keep them, rides out the leader's loss, and its batcher gathers transfers
//! from many tasks.

use std::time::Duration;

use api::client::{Client, ClientConfig};
use api::convert::{pb_u128, u128_of};
use api::proto::ledger as pb;

use crate::harness::{self, form, setup_ledger, Cluster, MERCHANT, WALLET};

fn client(cluster: &Cluster, ids: &[u64]) -> Client {
    let mut config = ClientConfig::new(ids.iter().map(|id| cluster.address(*id)).collect());
    config.timeout = Duration::from_secs(5);
    config.retry_for = Duration::from_secs(30);
    Client::new(config).unwrap()
}

async fn wallet(client: &Client) -> u128 {
    let accounts = client.lookup_accounts(&[WALLET], Duration::ZERO).await.unwrap();
    u128_of(accounts[0].balances.unwrap().credits_posted.as_ref())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_finds_the_leader_retries_with_the_same_ids_and_batches() {
    let mut cluster = Cluster::new();
    let leader = form(&mut cluster, &[1, 2, 3]).await;
    setup_ledger(&cluster, leader).await;
    let follower = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
    // Started from a follower only: writes still reach the leader.
    let only_follower = client(&cluster, &[follower]);
    let earn = |amount| pb::EarnRequest {
        account: pb_u128(WALLET),
        from: pb_u128(MERCHANT),
        amount: pb_u128(amount),
        asset: 1,
        ..Default::default()
    };
    let first = only_follower.earn(earn(10)).await.unwrap();
    assert_eq!(first.result, "ok");
    // The same request with its id is answered from the ledger's record, not applied again.
    let id = api::client::new_id();
    let with_id = pb::EarnRequest { id: pb_u128(id), ..earn(5) };
    assert_eq!(only_follower.earn(with_id).await.unwrap().result, "ok");
    assert_eq!(only_follower.earn(with_id).await.unwrap().result, "exists");
    assert_eq!(wallet(&only_follower).await, 15);

    // Zero ids are filled in, each transfer its own.
    let results = only_follower
        .create_transfers(vec![harness::earn(0, WALLET, 1), harness::earn(0, WALLET, 2)])
        .await
        .unwrap();
    assert!(results.iter().all(|r| r.result == "ok"), "{results:?}");
    assert_eq!(wallet(&only_follower).await, 18);

    // The batcher: many tasks, each one transfer; every one gets its own result.
    let all = client(&cluster, &[1, 2, 3]);
    let batcher = all.batcher(64, Duration::from_millis(5));
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let batcher = batcher.clone();
            tokio::spawn(async move { batcher.submit(harness::earn(0, WALLET, 1)).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().result, "ok");
    }
    assert_eq!(wallet(&all).await, 218);
    let linked = pb::NewTransfer { flags: 1, ..harness::earn(0, WALLET, 1) };
    assert!(batcher.submit(linked).await.is_err(), "a chain cannot be split into batches");

    // The leader goes away: the client finds the new one and the write lands once.
    cluster.stop(leader).await;
    let id = api::client::new_id();
    let after = all.earn(pb::EarnRequest { id: pb_u128(id), ..earn(100) }).await.unwrap();
    assert_eq!(after.result, "ok");
    assert_eq!(wallet(&all).await, 318);
    cluster.stop_all().await;
}

#[tokio::test]
async fn the_client_refuses_what_it_cannot_use() {
    assert!(Client::new(ClientConfig::new(Vec::new())).is_err());
    let mut config = ClientConfig::new(vec!["127.0.0.1:1".into()]);
    config.token = Some("bad\ntoken".into());
    assert!(Client::new(config).is_err());
    // Nothing listens: the call fails after its retry time, with UNAVAILABLE.
    let mut config = ClientConfig::new(vec!["127.0.0.1:1".into()]);
    config.retry_for = Duration::from_millis(300);
    config.connect_timeout = Duration::from_millis(100);
    let error =
        Client::new(config).unwrap().lookup_accounts(&[1], Duration::ZERO).await.unwrap_err();
    assert_eq!(error.code, tonic::Code::Unavailable, "{error}");
}
