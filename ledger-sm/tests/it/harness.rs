//! Runs a batch on the real state machine (`MemState`) and on the reference model, and reports
//! the first difference: results, a broken invariant (`invariants::check`), or records (the
//! last timestamp, accounts with their balances, lots, assets, transfers, refusal records, the
//! outbox's events, the gift-card index).

use std::collections::BTreeMap;

use ledger_sm::command::Batch;
use ledger_sm::invariants;
use ledger_sm::mem::MemState;
use ledger_sm::result::Results;
use ledger_sm::state::StateRead;

use crate::model::Model;

/// The real state machine and the model, fed the same batches.
#[derive(Clone, Debug)]
pub struct Pair {
    pub state: MemState,
    pub model: Model,
    /// Every batch so far, for failure reports.
    pub history: Vec<Batch>,
}

impl Default for Pair {
    fn default() -> Self {
        Self::new()
    }
}

impl Pair {
    pub fn new() -> Self {
        Self { state: MemState::with_journal(), model: Model::new(), history: Vec::new() }
    }

    /// Applies `batch` to both and compares; `Err` describes the first difference.
    pub fn step(&mut self, batch: &Batch) -> Result<Results, String> {
        self.history.push(batch.clone());
        let got = self.state.execute(batch);
        let want = self.model.execute(batch);
        if got != want {
            return Err(format!(
                "results differ\n  batch: {batch:?}\n  state: {got:?}\n  model: {want:?}"
            ));
        }
        invariants::check(&self.state.records())
            .map_err(|v| format!("invariant broken after {batch:?}: {v:?}"))?;
        compare_records(&self.state, &self.model)
            .map_err(|e| format!("records differ after {batch:?}\n{e}"))?;
        Ok(got)
    }

    /// The batches so far, one per line: a reproduction.
    pub fn replay(&self) -> String {
        self.history.iter().map(|b| format!("{b:?}\n")).collect()
    }
}

fn diff_maps<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
    what: &str,
    got: &BTreeMap<K, V>,
    want: &BTreeMap<K, V>,
) -> Result<(), String> {
    for (key, value) in got {
        match want.get(key) {
            None => return Err(format!("{what} {key:?}: only in the state: {value:?}")),
            Some(model) if model != value => {
                return Err(format!("{what} {key:?}:\n  state: {value:?}\n  model: {model:?}"))
            }
            Some(_) => {}
        }
    }
    if let Some((key, value)) = want.iter().find(|(key, _)| !got.contains_key(key)) {
        return Err(format!("{what} {key:?}: only in the model: {value:?}"));
    }
    Ok(())
}

/// Every record the model keeps, compared with the store's.
pub fn compare_records(state: &MemState, model: &Model) -> Result<(), String> {
    let meta = state.meta();
    if meta.timestamp_last.0 != model.last {
        return Err(format!(
            "timestamp_last: state {:?}, model {}",
            meta.timestamp_last, model.last
        ));
    }
    let accounts = state.accounts().map(|a| (a.id, a.clone())).collect();
    diff_maps("account", &accounts, &model.accounts)?;
    let lots: Vec<_> = state.all_lots().copied().collect();
    if lots != model.all_lots() {
        return Err(format!("lots:\n  state: {lots:?}\n  model: {:?}", model.all_lots()));
    }
    let assets = state.assets().map(|a| (a.id, a.clone())).collect();
    diff_maps("asset", &assets, &model.assets)?;
    let transfers = state.transfers().map(|t| (t.id, t.clone())).collect();
    let expected = model.transfers.values().map(|t| (t.id, t.clone())).collect();
    diff_maps("transfer", &transfers, &expected)?;
    let failed = state.transfers_failed().map(|f| (f.transfer.id, f.clone())).collect();
    diff_maps("refusal record", &failed, &model.failed)?;
    let events: Vec<_> = state.all_events().iter().map(|e| (e.timestamp, e.kind)).collect();
    if events != model.events {
        let same = events.iter().zip(&model.events).take_while(|(a, b)| a == b).count();
        return Err(format!(
            "events from #{same}:\n  state: {:?}\n  model: {:?}",
            &events[same..],
            &model.events[same..]
        ));
    }
    let cards = state.gift_card_index().iter().map(|(h, id)| (*h, *id)).collect();
    diff_maps("gift card", &cards, &model.gift_cards)?;
    let cursors = state.cursors().unwrap_or_else(|never| match never {});
    let cursors = cursors.into_iter().map(|c| (c.sink, c)).collect();
    diff_maps("cursor", &cursors, &model.cursors)?;
    if meta.events_first.0 != model.events_first {
        return Err(format!(
            "events_first: state {:?}, model {}",
            meta.events_first, model.events_first
        ));
    }
    Ok(())
}
