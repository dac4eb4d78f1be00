//! Time: a `Tick { now }` voids holds whose timeout passed and expires lots whose date passed,
//! as system transfers, so expiry is replicated and deterministic like every other write.

use super::Context;
use crate::command::NewTransfer;
use crate::constants::TICK_EXPIRIES_MAX;
use crate::event::EventKind;
use crate::result::TickOutcome;
use crate::types::{TransferCode, TransferFlags, TransferId, TransferState};

impl Context {
    pub(crate) fn tick(&mut self) -> TickOutcome {
        let now = self.now;
        let holds_due = std::mem::take(&mut self.holds_due);
        let lots_due = std::mem::take(&mut self.lots_due);
        assert!(holds_due.len() <= TICK_EXPIRIES_MAX as usize);
        assert!(lots_due.len() <= TICK_EXPIRIES_MAX as usize);
        let mut outcome = TickOutcome::default();
        for id in &holds_due {
            let hold = self.transfer(*id).expect("due holds prefetched").clone();
            assert_eq!(hold.state, TransferState::Pending, "resolved holds leave the due index");
            assert!(hold.hold_deadline().is_some_and(|deadline| deadline <= now));
            let timestamp = self.timestamp_next();
            let request = NewTransfer {
                id: TransferId::system(timestamp),
                code: Some(TransferCode::HoldTimeout),
                flags: TransferFlags(TransferFlags::VOID_PENDING),
                ..NewTransfer::default()
            };
            let flags = TransferFlags::VOID_PENDING;
            let void = self.resolve(
                &hold,
                &request,
                timestamp,
                hold.amount,
                flags,
                TransferState::Expired,
            );
            self.insert_and_emit(void, EventKind::HoldExpired);
            outcome.holds_expired += 1;
        }
        for due in &lots_due {
            assert!(due.expires_at <= now);
            if self.expire_lot(due.account, due.expires_at) {
                outcome.lots_expired += 1;
            }
        }
        outcome.more_due = holds_due.len() == TICK_EXPIRIES_MAX as usize
            || lots_due.len() == TICK_EXPIRIES_MAX as usize;
        outcome
    }

    /// Moves what is left of the account's lot at `expires_at` to the asset's expiry account.
    /// Returns whether anything expired.
    fn expire_lot(
        &mut self,
        id: crate::types::AccountId,
        expires_at: crate::types::Timestamp,
    ) -> bool {
        let Some(lot) = self
            .lots
            .get(&id)
            .and_then(|lots| lots.iter().find(|lot| lot.expires_at == expires_at))
        else {
            return false; // Consumed earlier in this tick: nothing left to expire.
        };
        let amount = lot.amount;
        let account = &self.accounts[&id];
        let asset = account.asset;
        let sink_id = self.assets[&asset].expiry_account;
        let sink = &self.accounts[&sink_id];
        assert!(account.balances.available_or_zero() >= amount, "lots never exceed available");
        if sink.balances.credits_posted.checked_add(amount).is_none() {
            // The sink is full beyond any real supply; keep the lot rather than lose count.
            return false;
        }
        let timestamp = self.timestamp_next();
        let request = NewTransfer {
            id: TransferId::system(timestamp),
            debit_account: id,
            credit_account: sink_id,
            amount,
            asset,
            code: Some(TransferCode::Expiry),
            ..NewTransfer::default()
        };
        let consumed = self.debit(id, amount, false, false, expires_at);
        assert_eq!(consumed.len(), 1);
        assert_eq!(consumed[0].expires_at, expires_at);
        self.credit(sink_id, amount, false, crate::types::Timestamp::ZERO);
        let transfer = self.record(&request, timestamp, amount, TransferState::Final, consumed);
        self.insert_and_emit(transfer, EventKind::LotExpired);
        true
    }
}
