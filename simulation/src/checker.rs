//! Linearizability checking of a recorded history against a sequential model.
//!
//! A history is linearizable when the calls can be put in one order that (1) keeps real time:
//! a call answered before another was made comes first, and (2) explains every answer: the
//! model, stepping through that order, gives each answered call the answer its caller saw. A
//! call never answered (a timeout, a crashed client) may have taken effect at any moment after
//! it was made, or never.
//!
//! The search is Wing & Gong's, with Lowe's memoization: walk the calls in time order; try to
//! linearize the earliest calls whose predecessors are all placed; back up when a call's answer
//! arrives before the call could be placed; never revisit a configuration (the set of placed
//! calls and the model's state) already found to lead nowhere. The history is a doubly linked
//! list of call and answer entries from which placed calls are unlinked and, on backing up,
//! relinked in reverse order (so every unlink is undone exactly).
//!
//! The memo keeps a 128-bit fingerprint of each state, not the state: a bank's state carries
//! every id used so far, and a million of them would not fit in memory. A fingerprint
//! collision could only skip a configuration never visited — report a history that has an
//! order as one that has none — never pass a history that has none.

use std::fmt::Debug;
use std::hash::Hash;

use rustc_hash::FxHashSet;
use xxhash_rust::xxh3::Xxh3Default;

/// A sequential specification: what one call does to a state, and which answers it may give.
pub trait Model {
    type State: Clone + Eq + Hash + Debug;
    type Op: Debug;
    type Ret: Debug;

    fn init(&self) -> Self::State;

    /// The state after `op` takes effect in `state`, if that is possible with the answer `ret`;
    /// `None` if the model cannot give that answer there. `ret` is `None` for a call never
    /// answered: the model then decides its effect alone.
    fn step(
        &self,
        state: &Self::State,
        op: &Self::Op,
        ret: Option<&Self::Ret>,
    ) -> Option<Self::State>;
}

/// One call as a client recorded it. Times are from one clock (the simulation's), in any unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call<Op, Ret> {
    pub client: u32,
    pub invoked: u64,
    /// When the answer arrived, and what it was; `None`: never answered.
    pub answered: Option<(u64, Ret)>,
    pub op: Op,
}

impl<Op, Ret> Call<Op, Ret> {
    #[must_use]
    pub fn answered(client: u32, invoked: u64, answered: u64, op: Op, ret: Ret) -> Self {
        assert!(invoked <= answered, "an answer before its call");
        Call { client, invoked, answered: Some((answered, ret)), op }
    }

    #[must_use]
    pub fn unanswered(client: u32, invoked: u64, op: Op) -> Self {
        Call { client, invoked, answered: None, op }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `order` (indexes into the history) explains every answer. Unanswered calls appear in it
    /// only if they must have taken effect.
    Linearizable { order: Vec<usize> },
    /// No order explains the answers. `longest` is the longest order found that explains every
    /// answer placed, and `unexplained` the answered call that could not follow it.
    NotLinearizable { longest: Vec<usize>, unexplained: usize },
    /// The search visited `configurations` configurations without deciding.
    Undecided { configurations: usize },
}

impl Verdict {
    #[must_use]
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable { .. })
    }
}

/// A state's 128-bit fingerprint, for the memo.
fn fingerprint<S: Hash>(state: &S) -> u128 {
    let mut hasher = Xxh3Default::new();
    state.hash(&mut hasher);
    hasher.digest128()
}

/// Decides whether `history` is linearizable with respect to `model`, visiting at most
/// `configurations_max` distinct configurations.
///
/// # Panics
/// A call answered before it was made (the recorder's bug).
#[must_use]
pub fn check<M: Model>(
    model: &M,
    history: &[Call<M::Op, M::Ret>],
    configurations_max: usize,
) -> Verdict {
    let mut list = Entries::new(history);
    let mut placed = Bits::new(history.len());
    let mut seen: FxHashSet<(Bits, u128)> = FxHashSet::default();
    let mut state = model.init();
    // The calls placed so far, in order, with the state before each.
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut longest: (Vec<usize>, Option<usize>) = (Vec::new(), None);
    let mut entry = list.first();
    loop {
        if list.answers_left == 0 {
            let order: Vec<usize> = stack.iter().map(|(call, _)| *call).collect();
            assert!(order.iter().all(|call| placed.get(*call)));
            return Verdict::Linearizable { order };
        }
        let back_up = match list.kind(entry) {
            Kind::End => true,
            Kind::Answer(call) => {
                if longest.1.is_none() || stack.len() > longest.0.len() {
                    longest = (stack.iter().map(|(c, _)| *c).collect(), Some(call));
                }
                true
            }
            Kind::Call(call) => {
                let ret = history[call].answered.as_ref().map(|(_, ret)| ret);
                if let Some(next) = model.step(&state, &history[call].op, ret) {
                    placed.set(call);
                    if seen.len() >= configurations_max {
                        return Verdict::Undecided { configurations: seen.len() };
                    }
                    if seen.insert((placed.clone(), fingerprint(&next))) {
                        stack.push((call, std::mem::replace(&mut state, next)));
                        list.unlink(call);
                        entry = list.first();
                        continue;
                    }
                    placed.clear(call);
                }
                entry = list.next[entry];
                false
            }
        };
        if back_up {
            let Some((call, before)) = stack.pop() else {
                let (longest, unexplained) = longest;
                return Verdict::NotLinearizable {
                    longest,
                    unexplained: unexplained.expect("only an answer can leave nothing to place"),
                };
            };
            assert!(placed.get(call));
            placed.clear(call);
            state = before;
            list.relink(call);
            entry = list.next[list.call_entry[call]];
        }
    }
}

enum Kind {
    Call(usize),
    Answer(usize),
    End,
}

/// The history as a circular doubly linked list of entries in time order; entry 0 is the head
/// and the end.
struct Entries {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Entry `e >= 1`: (call index, is the answer).
    of: Vec<(usize, bool)>,
    call_entry: Vec<usize>,
    answer_entry: Vec<Option<usize>>,
    answers_left: usize,
}

impl Entries {
    fn new<Op, Ret>(history: &[Call<Op, Ret>]) -> Entries {
        // At equal times calls sort before answers: two calls that touch at one instant are
        // taken as overlapping, which can only make the check more lenient, never wrong.
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(history.len() * 2);
        for (index, call) in history.iter().enumerate() {
            order.push((call.invoked, false, index));
            if let Some((answered, _)) = &call.answered {
                assert!(call.invoked <= *answered, "call {index} answered before it was made");
                order.push((*answered, true, index));
            }
        }
        order.sort_unstable();
        let count = order.len() + 1;
        let mut entries = Entries {
            next: (1..=count).map(|e| e % count).collect(),
            prev: (0..count).map(|e| (e + count - 1) % count).collect(),
            of: vec![(usize::MAX, false); count],
            call_entry: vec![0; history.len()],
            answer_entry: vec![None; history.len()],
            answers_left: 0,
        };
        for (position, (_, answer, call)) in order.into_iter().enumerate() {
            let entry = position + 1;
            entries.of[entry] = (call, answer);
            if answer {
                entries.answer_entry[call] = Some(entry);
                entries.answers_left += 1;
            } else {
                entries.call_entry[call] = entry;
            }
        }
        assert!(entries.call_entry.iter().all(|e| *e >= 1));
        entries
    }

    fn first(&self) -> usize {
        self.next[0]
    }

    fn kind(&self, entry: usize) -> Kind {
        match (entry, self.of[entry]) {
            (0, _) => Kind::End,
            (_, (call, false)) => Kind::Call(call),
            (_, (call, true)) => Kind::Answer(call),
        }
    }

    fn unlink(&mut self, call: usize) {
        self.unlink_entry(self.call_entry[call]);
        if let Some(answer) = self.answer_entry[call] {
            self.unlink_entry(answer);
            self.answers_left -= 1;
        }
    }

    /// Undoes `unlink(call)`; valid only as the reverse of the latest unlink still in effect.
    fn relink(&mut self, call: usize) {
        if let Some(answer) = self.answer_entry[call] {
            self.relink_entry(answer);
            self.answers_left += 1;
        }
        self.relink_entry(self.call_entry[call]);
    }

    fn unlink_entry(&mut self, entry: usize) {
        assert_ne!(entry, 0);
        let (prev, next) = (self.prev[entry], self.next[entry]);
        assert_eq!(self.next[prev], entry);
        self.next[prev] = next;
        self.prev[next] = prev;
    }

    fn relink_entry(&mut self, entry: usize) {
        let (prev, next) = (self.prev[entry], self.next[entry]);
        assert_eq!(self.next[prev], next, "relinked out of order");
        self.next[prev] = entry;
        self.prev[next] = entry;
    }
}

/// A set of call indexes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }

    fn get(&self, index: usize) -> bool {
        self.0[index / 64] & (1 << (index % 64)) != 0
    }

    fn set(&mut self, index: usize) {
        self.0[index / 64] |= 1 << (index % 64);
    }

    fn clear(&mut self, index: usize) {
        self.0[index / 64] &= !(1 << (index % 64));
    }
}

#[cfg(test)]
mod tests;
