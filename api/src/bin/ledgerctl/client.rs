//! `ledgerctl`'s client commands: accounts, the business operations, gift cards and reads,
//! through `api::client` (leader discovery, retries with the same ids). Tables by default;
//! `--json` prints the API's JSON form instead.

use std::io::BufRead;
use std::time::Duration;

use api::client::Client;
use api::convert::{pb_u128, u128_of};
use api::proto::ledger as pb;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account.
    Create {
        #[arg(long)]
        id: u128,
        #[arg(long)]
        asset: u32,
        /// CUSTOMER_WALLET, GIFT_CARD, MERCHANT_ISSUANCE, MERCHANT_SETTLEMENT, EXPIRY_SINK, OPERATOR.
        #[arg(long, value_parser = account_kind)]
        kind: pb::AccountKind,
        /// 2: debits must not exceed credits; 4: credits must not exceed debits.
        #[arg(long, default_value_t = 0)]
        flags: u32,
        #[arg(long, default_value_t = 0)]
        overdraft_limit: u128,
    },
    /// Show accounts and their balances.
    Show { ids: Vec<u128> },
}

#[derive(Debug, Subcommand)]
pub enum GiftCardCommand {
    /// Issue a gift card, optionally loaded. The code is read from standard input (one line),
    /// so it stays out of shell history and process lists.
    Issue {
        #[arg(long)]
        id: u128,
        #[arg(long)]
        asset: u32,
        /// Load from this account (with --amount).
        #[arg(long, default_value_t = 0)]
        from: u128,
        #[arg(long, default_value_t = 0)]
        amount: u128,
        /// The load transfer's id [default: a fresh one].
        #[arg(long, default_value_t = 0)]
        load_id: u128,
    },
    /// Show the card whose code is read from standard input.
    Show,
}

/// Which part of an account's history to read.
#[derive(Debug, Args)]
pub struct Range {
    pub account: u128,
    /// Oldest timestamp (ns since the epoch) to include.
    #[arg(long, default_value_t = 0)]
    pub from_ns: u64,
    /// Newest timestamp to include (0: no bound).
    #[arg(long, default_value_t = 0)]
    pub to_ns: u64,
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Newest first.
    #[arg(long)]
    pub descending: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create or show accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Points earned: `--from` (issuance) is debited, `--account` credited.
    Earn {
        #[arg(long)]
        account: u128,
        #[arg(long)]
        from: u128,
        #[arg(long)]
        amount: u128,
        #[arg(long)]
        asset: u32,
        /// When these points expire (ns since the epoch; 0: never).
        #[arg(long, default_value_t = 0)]
        expires_at_ns: u64,
        /// The transfer id [default: a fresh one]. Give one to make a retry safe.
        #[arg(long, default_value_t = 0)]
        id: u128,
    },
    /// Points burned or a card redeemed: `--account` is debited, `--to` credited.
    Burn {
        #[arg(long)]
        account: u128,
        #[arg(long)]
        to: u128,
        #[arg(long)]
        amount: u128,
        #[arg(long)]
        asset: u32,
        /// Burn what is available, up to --amount, instead of refusing.
        #[arg(long)]
        up_to_available: bool,
        /// BURN (default) or REDEEM.
        #[arg(long, value_parser = transfer_code, default_value = "BURN")]
        code: pb::TransferCode,
        #[arg(long, default_value_t = 0)]
        id: u128,
    },
    /// Hold an amount of `--account` for `--to`.
    Hold {
        #[arg(long)]
        account: u128,
        #[arg(long)]
        to: u128,
        #[arg(long)]
        amount: u128,
        #[arg(long)]
        asset: u32,
        /// Seconds until the hold voids itself (0: never).
        #[arg(long, default_value_t = 0)]
        timeout: u32,
        #[arg(long, value_parser = transfer_code, default_value = "BURN")]
        code: pb::TransferCode,
        #[arg(long, default_value_t = 0)]
        id: u128,
    },
    /// Capture all (no --amount) or part of a hold.
    Capture {
        #[arg(long)]
        hold: u128,
        #[arg(long, default_value_t = 0)]
        amount: u128,
        #[arg(long, default_value_t = 0)]
        id: u128,
    },
    /// Void a hold.
    Void {
        #[arg(long)]
        hold: u128,
        #[arg(long, default_value_t = 0)]
        id: u128,
    },
    /// Refund all that is left (no --amount) or part of a transfer.
    Refund {
        #[arg(long)]
        transfer: u128,
        #[arg(long, default_value_t = 0)]
        amount: u128,
        #[arg(long, default_value_t = 0)]
        id: u128,
    },
    /// Issue or show gift cards.
    #[command(subcommand)]
    GiftCard(GiftCardCommand),
    /// An account's transfers.
    Transfers(Range),
    /// An account's balances after each of its transfers.
    BalanceHistory(Range),
    /// An account's open lots, earliest expiry first.
    Lots { account: u128 },
}

fn account_kind(name: &str) -> Result<pb::AccountKind, String> {
    pb::AccountKind::from_str_name(&name.to_ascii_uppercase())
        .filter(|k| *k != pb::AccountKind::Unspecified)
        .ok_or_else(|| format!("unknown account kind {name:?}"))
}

fn transfer_code(name: &str) -> Result<pb::TransferCode, String> {
    pb::TransferCode::from_str_name(&name.to_ascii_uppercase())
        .ok_or_else(|| format!("unknown transfer code {name:?}"))
}

fn num(value: Option<&pb::U128>) -> u128 {
    u128_of(value)
}

fn read_code() -> Result<String, String> {
    eprintln!("gift card code (one line on standard input):");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("standard input: {e}"))?;
    let code = line.trim().to_owned();
    if code.is_empty() {
        return Err("no gift card code given".into());
    }
    Ok(code)
}

fn json<T: serde::Serialize>(value: &T) -> Result<(), String> {
    println!("{}", serde_json::to_string_pretty(value).map_err(|e| e.to_string())?);
    Ok(())
}

fn print_result(json_out: bool, id: u128, result: &pb::TransferResult) -> Result<(), String> {
    if json_out {
        return json(result);
    }
    println!(
        "{:<40} {:<28} {:>12} {:>14} {:>14}",
        "TRANSFER", "RESULT", "AMOUNT", "DEBIT AVAIL", "CREDIT AVAIL"
    );
    let available = |b: Option<&pb::AccountBalances>| {
        b.and_then(|b| b.balances.as_ref()).map_or_else(
            || "-".to_owned(),
            |b| {
                let credits = num(b.credits_posted.as_ref());
                let debits = num(b.debits_posted.as_ref()) + num(b.debits_pending.as_ref());
                credits.saturating_sub(debits).to_string()
            },
        )
    };
    println!(
        "{:<40} {:<28} {:>12} {:>14} {:>14}",
        id,
        result.result,
        num(result.amount.as_ref()),
        available(result.debit.as_ref()),
        available(result.credit.as_ref())
    );
    if matches!(result.result.as_str(), "ok" | "exists") {
        Ok(())
    } else {
        Err(format!("the ledger refused it: {}", result.result))
    }
}

fn print_accounts(json_out: bool, accounts: &[pb::Account]) -> Result<(), String> {
    if json_out {
        return json(&accounts);
    }
    println!(
        "{:<40} {:<20} {:>6} {:<12} {:>14} {:>14} {:>12} {:>14}",
        "ACCOUNT", "KIND", "ASSET", "STATUS", "CREDITS", "DEBITS", "PENDING", "AVAILABLE"
    );
    for a in accounts {
        let b = a.balances.unwrap_or_default();
        println!(
            "{:<40} {:<20} {:>6} {:<12} {:>14} {:>14} {:>12} {:>14}",
            num(a.id.as_ref()),
            pb::AccountKind::try_from(a.kind).map_or("?", |k| k.as_str_name()),
            a.asset,
            a.status,
            num(b.credits_posted.as_ref()),
            num(b.debits_posted.as_ref()),
            num(b.debits_pending.as_ref()),
            num(a.available.as_ref())
        );
    }
    Ok(())
}

fn filter(range: &Range) -> pb::AccountFilter {
    pb::AccountFilter {
        account: pb_u128(range.account),
        timestamp_min: range.from_ns,
        timestamp_max: range.to_ns,
        limit: range.limit,
        descending: range.descending,
        consistency: None,
    }
}

fn fresh(id: u128) -> u128 {
    if id == 0 {
        api::client::new_id()
    } else {
        id
    }
}

/// Prints what became of a created account or card; a refusal is an error.
fn created(what: &str, result: Option<&str>) -> Result<(), String> {
    let result = result.unwrap_or("no result");
    println!("{what}: {result}");
    match result {
        "ok" | "exists" => Ok(()),
        other => Err(format!("the ledger refused it: {other}")),
    }
}

/// Runs one client command.
pub async fn run(client: &Client, command: ClientCommand, json_out: bool) -> Result<(), String> {
    let e = |e: api::client::ClientError| e.to_string();
    match command {
        ClientCommand::Account(AccountCommand::Create {
            id,
            asset,
            kind,
            flags,
            overdraft_limit,
        }) => {
            let account = pb::NewAccount {
                id: pb_u128(id),
                asset,
                kind: kind as i32,
                flags,
                overdraft_limit: pb_u128(overdraft_limit),
                ..Default::default()
            };
            let results = client.create_accounts(vec![account]).await.map_err(e)?;
            if json_out {
                return json(&results);
            }
            created(&format!("account {id}"), results.first().map(|r| r.result.as_str()))
        }
        ClientCommand::Account(AccountCommand::Show { ids }) => {
            let accounts = client.lookup_accounts(&ids, Duration::ZERO).await.map_err(e)?;
            print_accounts(json_out, &accounts)
        }
        ClientCommand::GiftCard(GiftCardCommand::Issue { id, asset, from, amount, load_id }) => {
            let code = read_code()?;
            let load = amount > 0;
            let card = pb::GiftCardIssue {
                account: Some(pb::NewAccount {
                    id: pb_u128(id),
                    asset,
                    kind: pb::AccountKind::GiftCard as i32,
                    ..Default::default()
                }),
                code,
                load_transfer_id: pb_u128(if load { fresh(load_id) } else { 0 }),
                load_from: pb_u128(from),
                load_amount: pb_u128(amount),
            };
            let results = client.issue_gift_cards(vec![card]).await.map_err(e)?;
            if json_out {
                return json(&results);
            }
            created(&format!("gift card {id}"), results.first().map(|r| r.result.as_str()))
        }
        ClientCommand::GiftCard(GiftCardCommand::Show) => {
            let code = read_code()?;
            match client.gift_card(&code).await.map_err(e)? {
                Some(card) => print_accounts(json_out, &[card]),
                None => Err("no gift card with this code".into()),
            }
        }
        ClientCommand::Transfers(_)
        | ClientCommand::BalanceHistory(_)
        | ClientCommand::Lots { .. } => history(client, command, json_out).await,
        operation => operate(client, operation, json_out).await,
    }
}

/// The business operations: one transfer each.
async fn operate(client: &Client, command: ClientCommand, json_out: bool) -> Result<(), String> {
    let e = |e: api::client::ClientError| e.to_string();
    match command {
        ClientCommand::Earn { account, from, amount, asset, expires_at_ns, id } => {
            let id = fresh(id);
            let request = pb::EarnRequest {
                id: pb_u128(id),
                account: pb_u128(account),
                from: pb_u128(from),
                amount: pb_u128(amount),
                asset,
                expires_at: expires_at_ns,
                ..Default::default()
            };
            print_result(json_out, id, &client.earn(request).await.map_err(e)?)
        }
        ClientCommand::Burn { account, to, amount, asset, up_to_available, code, id } => {
            let id = fresh(id);
            let request = pb::BurnRequest {
                id: pb_u128(id),
                account: pb_u128(account),
                to: pb_u128(to),
                amount: pb_u128(amount),
                asset,
                code: code as i32,
                up_to_available,
                ..Default::default()
            };
            print_result(json_out, id, &client.burn(request).await.map_err(e)?)
        }
        ClientCommand::Hold { account, to, amount, asset, timeout, code, id } => {
            let id = fresh(id);
            let request = pb::HoldRequest {
                id: pb_u128(id),
                account: pb_u128(account),
                to: pb_u128(to),
                amount: pb_u128(amount),
                asset,
                code: code as i32,
                timeout,
                ..Default::default()
            };
            print_result(json_out, id, &client.hold(request).await.map_err(e)?)
        }
        settlement => settle(client, settlement, json_out).await,
    }
}

/// An account's transfers, balance history or lots.
async fn history(client: &Client, command: ClientCommand, json_out: bool) -> Result<(), String> {
    let e = |e: api::client::ClientError| e.to_string();
    match command {
        ClientCommand::Transfers(range) => {
            let transfers = client.account_transfers(filter(&range)).await.map_err(e)?;
            if json_out {
                return json(&transfers);
            }
            println!(
                "{:<40} {:>20} {:<12} {:<10} {:>12} {:<40} {:<40}",
                "TRANSFER", "TIMESTAMP", "CODE", "STATE", "AMOUNT", "DEBIT", "CREDIT"
            );
            for t in &transfers {
                println!(
                    "{:<40} {:>20} {:<12} {:<10} {:>12} {:<40} {:<40}",
                    num(t.id.as_ref()),
                    t.timestamp,
                    pb::TransferCode::try_from(t.code).map_or("?", |c| c.as_str_name()),
                    t.state,
                    num(t.amount.as_ref()),
                    num(t.debit_account.as_ref()),
                    num(t.credit_account.as_ref())
                );
            }
            Ok(())
        }
        ClientCommand::BalanceHistory(range) => {
            let entries = client.balance_history(filter(&range)).await.map_err(e)?;
            if json_out {
                return json(&entries);
            }
            println!(
                "{:<40} {:>20} {:>14} {:>14} {:>12}",
                "TRANSFER", "TIMESTAMP", "CREDITS", "DEBITS", "PENDING"
            );
            for entry in &entries {
                let b = entry.balances.unwrap_or_default();
                println!(
                    "{:<40} {:>20} {:>14} {:>14} {:>12}",
                    num(entry.transfer.as_ref()),
                    entry.timestamp,
                    num(b.credits_posted.as_ref()),
                    num(b.debits_posted.as_ref()),
                    num(b.debits_pending.as_ref())
                );
            }
            Ok(())
        }
        ClientCommand::Lots { account } => {
            let lots = client.account_lots(account).await.map_err(e)?;
            if json_out {
                return json(&lots);
            }
            println!("{:>20} {:>14}", "EXPIRES AT (NS)", "AMOUNT");
            for lot in &lots {
                println!("{:>20} {:>14}", lot.expires_at, num(lot.amount.as_ref()));
            }
            Ok(())
        }
        other => Err(format!("not a read: {other:?}")),
    }
}

/// What follows a hold or a transfer: capture, void, refund.
async fn settle(client: &Client, command: ClientCommand, json_out: bool) -> Result<(), String> {
    let e = |e: api::client::ClientError| e.to_string();
    match command {
        ClientCommand::Capture { hold, amount, id } => {
            let id = fresh(id);
            let request = pb::CaptureRequest {
                id: pb_u128(id),
                hold: pb_u128(hold),
                amount: pb_u128(amount),
                ..Default::default()
            };
            print_result(json_out, id, &client.capture(request).await.map_err(e)?)
        }
        ClientCommand::Void { hold, id } => {
            let id = fresh(id);
            let request =
                pb::VoidRequest { id: pb_u128(id), hold: pb_u128(hold), ..Default::default() };
            print_result(json_out, id, &client.void(request).await.map_err(e)?)
        }
        ClientCommand::Refund { transfer, amount, id } => {
            let id = fresh(id);
            let request = pb::RefundRequest {
                id: pb_u128(id),
                transfer: pb_u128(transfer),
                amount: pb_u128(amount),
                ..Default::default()
            };
            print_result(json_out, id, &client.refund(request).await.map_err(e)?)
        }
        other => Err(format!("not a settlement: {other:?}")),
    }
}
