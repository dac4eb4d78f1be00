//! A delivery turned into column arrays for `UNNEST`: one row per transfer, two entries per
//! transfer, and one row per wallet touched (its state after the batch's last event for it).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::payload::{BalancesPayload, Payload, TransferPayload};
use crate::postgres::numeric::Numeric;
use crate::sink::SinkError;

/// The wallet columns one batch sets, `None` where it leaves the stored value.
#[derive(Debug, Default)]
pub struct Wallets {
    index: HashMap<u128, usize>,
    pub account_id: Vec<Numeric>,
    pub seq: Vec<i64>,
    pub asset: Vec<Option<i32>>,
    pub kind: Vec<Option<String>>,
    pub status: Vec<Option<String>>,
    pub flags: Vec<Option<i32>>,
    pub overdraft_limit: Vec<Option<Numeric>>,
    pub merchant: Vec<Option<Numeric>>,
    pub debits_pending: Vec<Option<Numeric>>,
    pub debits_posted: Vec<Option<Numeric>>,
    pub credits_pending: Vec<Option<Numeric>>,
    pub credits_posted: Vec<Option<Numeric>>,
    pub external_ref: Vec<Option<Vec<u8>>>,
    pub metadata: Vec<Option<Vec<u8>>>,
    pub erased: Vec<bool>,
    pub created_at: Vec<Option<SystemTime>>,
    pub updated_at: Vec<SystemTime>,
}

#[derive(Debug, Default)]
pub struct Transactions {
    pub transfer_id: Vec<Numeric>,
    pub seq: Vec<i64>,
    pub kind: Vec<String>,
    pub code: Vec<String>,
    pub debit_account: Vec<Numeric>,
    pub credit_account: Vec<Numeric>,
    pub amount: Vec<Numeric>,
    pub asset: Vec<i32>,
    /// Comma-separated flag names (`string_to_array` in SQL: `UNNEST` flattens arrays).
    pub flags: Vec<String>,
    pub pending_id: Vec<Option<Numeric>>,
    pub reverses: Vec<Option<Numeric>>,
    pub timeout_s: Vec<i64>,
    pub expires_at: Vec<Option<SystemTime>>,
    pub user_data_128: Vec<Numeric>,
    pub user_data_64: Vec<Numeric>,
    pub user_data_32: Vec<i64>,
    pub occurred_at: Vec<SystemTime>,
}

#[derive(Debug, Default)]
pub struct Entries {
    pub transfer_id: Vec<Numeric>,
    pub side: Vec<String>,
    pub account_id: Vec<Numeric>,
    pub asset: Vec<i32>,
    pub amount: Vec<Numeric>,
    pub balances: [Vec<Numeric>; 4],
    pub seq: Vec<i64>,
    pub occurred_at: Vec<SystemTime>,
}

/// One delivery's rows.
#[derive(Debug, Default)]
pub struct Batch {
    pub wallets: Wallets,
    pub transactions: Transactions,
    pub entries: Entries,
}

impl Batch {
    /// Adds one event; events come in sequence order.
    ///
    /// # Errors
    /// A payload whose numbers do not parse (a bug: payloads are made by `Payload::new`).
    pub fn add(&mut self, event: &Payload) -> Result<(), SinkError> {
        let seq = i64::try_from(event.seq()).map_err(|_| bad("seq", &event.seq))?;
        let at = time(&event.timestamp)?.ok_or_else(|| bad("timestamp", &event.timestamp))?;
        if let Some(t) = &event.transfer {
            return self.add_transfer(event, t, seq, at);
        }
        let Some(account) = &event.account else { return Ok(()) };
        let row = self.wallets.row(num(account)?, seq, at);
        let w = &mut self.wallets;
        if let Some(info) = &event.account_info {
            w.asset[row] = Some(i32::try_from(info.asset).map_err(|_| bad("asset", account))?);
            w.kind[row] = Some(info.kind.clone());
            w.status[row] = Some(info.status.clone());
            w.flags[row] = Some(i32::from(info.flags));
            w.overdraft_limit[row] = Some(Numeric(num(&info.overdraft_limit)?));
            w.merchant[row] = Some(Numeric(num(&info.merchant)?));
            w.external_ref[row] = Some(unhex(&info.external_ref)?);
            w.metadata[row] = Some(unhex(&info.metadata)?);
            w.erased[row] |= info.erased;
            w.created_at[row] = Some(at);
            w.set_balances(row, [0; 4]);
        }
        if let Some(status) = &event.status_to {
            w.status[row] = Some(status.clone());
        }
        if let Some(flags) = event.account_flags {
            w.flags[row] = Some(i32::from(flags));
        }
        if let Some(limit) = &event.overdraft_limit {
            w.overdraft_limit[row] = Some(Numeric(num(limit)?));
        }
        if event.kind == "erased" {
            w.erased[row] = true;
            w.external_ref[row] = None;
            w.metadata[row] = None;
        }
        Ok(())
    }
}

impl Batch {
    fn add_transfer(
        &mut self,
        event: &Payload,
        t: &TransferPayload,
        seq: i64,
        at: SystemTime,
    ) -> Result<(), SinkError> {
        let transfer_id = num(&t.id)?;
        let debit = num(&t.debit_account)?;
        let credit = num(&t.credit_account)?;
        let amount = num(&t.amount)?;
        let asset = i32::try_from(t.asset).map_err(|_| bad("asset", &t.asset.to_string()))?;
        let x = &mut self.transactions;
        x.transfer_id.push(Numeric(transfer_id));
        x.seq.push(seq);
        x.kind.push(event.kind.clone());
        x.code.push(t.code.clone());
        x.debit_account.push(Numeric(debit));
        x.credit_account.push(Numeric(credit));
        x.amount.push(Numeric(amount));
        x.asset.push(asset);
        x.flags.push(t.flags.join(","));
        x.pending_id.push(Some(num(&t.pending_id)?).filter(|v| *v != 0).map(Numeric));
        x.reverses.push(Some(num(&t.reverses)?).filter(|v| *v != 0).map(Numeric));
        x.timeout_s.push(i64::from(t.timeout));
        x.expires_at.push(time(&t.expires_at)?);
        x.user_data_128.push(Numeric(num(&t.user_data_128)?));
        x.user_data_64.push(Numeric(num(&t.user_data_64)?));
        x.user_data_32.push(i64::from(t.user_data_32));
        x.occurred_at.push(at);
        for (side, account, balances) in
            [("D", debit, &t.debit_balances), ("C", credit, &t.credit_balances)]
        {
            let balances = parse_balances(balances)?;
            let e = &mut self.entries;
            e.transfer_id.push(Numeric(transfer_id));
            e.side.push(side.to_owned());
            e.account_id.push(Numeric(account));
            e.asset.push(asset);
            e.amount.push(Numeric(amount));
            for (column, value) in e.balances.iter_mut().zip(balances) {
                column.push(Numeric(value));
            }
            e.seq.push(seq);
            e.occurred_at.push(at);
            let row = self.wallets.row(account, seq, at);
            self.wallets.asset[row] = Some(asset);
            self.wallets.set_balances(row, balances);
        }
        Ok(())
    }
}

impl Wallets {
    /// The account's row in this batch, moved to `seq`.
    fn row(&mut self, account: u128, seq: i64, at: SystemTime) -> usize {
        let next = self.account_id.len();
        let row = *self.index.entry(account).or_insert(next);
        if row == next {
            self.account_id.push(Numeric(account));
            self.seq.push(seq);
            self.asset.push(None);
            self.kind.push(None);
            self.status.push(None);
            self.flags.push(None);
            self.overdraft_limit.push(None);
            self.merchant.push(None);
            self.debits_pending.push(None);
            self.debits_posted.push(None);
            self.credits_pending.push(None);
            self.credits_posted.push(None);
            self.external_ref.push(None);
            self.metadata.push(None);
            self.erased.push(false);
            self.created_at.push(None);
            self.updated_at.push(at);
        }
        self.seq[row] = seq;
        self.updated_at[row] = at;
        row
    }

    fn set_balances(&mut self, row: usize, [dp, dpo, cp, cpo]: [u128; 4]) {
        self.debits_pending[row] = Some(Numeric(dp));
        self.debits_posted[row] = Some(Numeric(dpo));
        self.credits_pending[row] = Some(Numeric(cp));
        self.credits_posted[row] = Some(Numeric(cpo));
    }
}

fn parse_balances(b: &BalancesPayload) -> Result<[u128; 4], SinkError> {
    Ok([
        num(&b.debits_pending)?,
        num(&b.debits_posted)?,
        num(&b.credits_pending)?,
        num(&b.credits_posted)?,
    ])
}

fn num(text: &str) -> Result<u128, SinkError> {
    text.parse().map_err(|_| bad("number", text))
}

/// Nanoseconds since the epoch as a time; "0" is none.
fn time(nanos: &str) -> Result<Option<SystemTime>, SinkError> {
    let nanos: u64 = nanos.parse().map_err(|_| bad("timestamp", nanos))?;
    Ok((nanos != 0).then(|| UNIX_EPOCH + Duration::from_nanos(nanos)))
}

fn unhex(text: &str) -> Result<Vec<u8>, SinkError> {
    if text.len() % 2 != 0 {
        return Err(bad("hex", text));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|_| bad("hex", text)))
        .collect()
}

fn bad(what: &str, text: &str) -> SinkError {
    SinkError::Unavailable(format!("payload {what} {text:?} does not parse"))
}
