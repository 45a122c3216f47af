//! Relatives in the pool: the ancestors and descendants of an entry, the sums each entry keeps
//! of them ([`Package`]), the chain limits checked before a transaction is added, and removal
//! that keeps every remaining relative's sums exact.
//!
//! Sums are recomputed by walking the relatives whose set changed, which the chain limits keep
//! small (25 by default); a reorganisation may return transactions past the limits, and the
//! walks stay correct, only longer.

use std::collections::HashSet;

use gossipcoin_proto::{Transaction, Txid};

use super::{FeeRate, Mempool, MempoolEntry, MempoolError};

/// A set of pool transactions summed: how many, their encoded bytes, their fees in units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Package {
    pub count: usize,
    pub size: usize,
    pub fee: u64,
}

impl Package {
    /// The package's fee rate.
    pub fn fee_rate(&self) -> FeeRate {
        FeeRate::of_units(self.fee, self.size)
    }

    pub(super) fn add(&mut self, other: &Package) {
        self.count += other.count;
        self.size += other.size;
        self.fee = self.fee.saturating_add(other.fee);
    }
}

/// Which chain limit a transaction would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainLimit {
    Ancestors,
    AncestorBytes,
    Descendants,
    DescendantBytes,
}

impl std::fmt::Display for ChainLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ancestors => "too many unconfirmed ancestors",
            Self::AncestorBytes => "too many bytes of unconfirmed ancestors",
            Self::Descendants => "an ancestor would have too many unconfirmed descendants",
            Self::DescendantBytes => "an ancestor would have too many bytes of descendants",
        })
    }
}

impl MempoolEntry {
    /// The entry alone, as a package.
    pub(super) fn own(&self) -> Package {
        Package {
            count: 1,
            size: self.size,
            fee: self.fee.units(),
        }
    }
}

impl Mempool {
    /// The distinct pool transactions `tx` spends outputs of.
    pub(super) fn parents_of_tx(&self, tx: &Transaction) -> Vec<Txid> {
        let mut parents: Vec<Txid> = tx
            .inputs
            .iter()
            .map(|i| i.prevout.txid)
            .filter(|t| self.entries.contains_key(t))
            .collect();
        parents.sort_unstable();
        parents.dedup();
        parents
    }

    /// The distinct pool transactions spending an output of `txid`.
    pub(super) fn children_of(&self, txid: &Txid) -> Vec<Txid> {
        let Some(entry) = self.entries.get(txid) else {
            return Vec::new();
        };
        let mut children: Vec<Txid> = (0..entry.tx.outputs.len() as u32)
            .filter_map(|vout| {
                self.spenders
                    .get(&gossipcoin_proto::OutPoint { txid: *txid, vout })
                    .copied()
            })
            .collect();
        children.sort_unstable();
        children.dedup();
        children
    }

    /// Every in-pool ancestor of `tx` (not itself), each once.
    pub(super) fn ancestors_of_tx(&self, tx: &Transaction) -> Vec<Txid> {
        self.walk(self.parents_of_tx(tx), |t| {
            self.parents_of_tx(&self.entries[t].tx)
        })
    }

    /// Every in-pool descendant of `txid` (not itself), each once.
    pub(super) fn descendants_of(&self, txid: &Txid) -> Vec<Txid> {
        self.walk(self.children_of(txid), |t| self.children_of(t))
    }

    fn walk(&self, start: Vec<Txid>, next: impl Fn(&Txid) -> Vec<Txid>) -> Vec<Txid> {
        let mut seen: HashSet<Txid> = HashSet::new();
        let mut stack = start;
        let mut out = Vec::new();
        while let Some(t) = stack.pop() {
            if seen.insert(t) {
                out.push(t);
                stack.extend(next(&t));
            }
        }
        out
    }

    /// Checks `tx` (not yet in the pool, `size` bytes) against the chain limits; returns its
    /// ancestors. Transactions it replaces still count (conservative, as Core).
    pub(super) fn check_chain_limits(
        &self,
        tx: &Transaction,
        txid: Txid,
        size: usize,
    ) -> Result<Vec<Txid>, MempoolError> {
        let l = &self.limits;
        let ancestors = self.ancestors_of_tx(tx);
        let refuse = |limit| Err(MempoolError::TooLongChain { txid, limit });
        if ancestors.len() + 1 > l.max_ancestors {
            return refuse(ChainLimit::Ancestors);
        }
        let anc_bytes: usize = ancestors.iter().map(|a| self.entries[a].size).sum();
        if anc_bytes + size > l.max_ancestor_bytes {
            return refuse(ChainLimit::AncestorBytes);
        }
        for a in &ancestors {
            let d = self.entries[a].descendants;
            if d.count + 1 > l.max_descendants {
                return refuse(ChainLimit::Descendants);
            }
            if d.size + size > l.max_descendant_bytes {
                return refuse(ChainLimit::DescendantBytes);
            }
        }
        Ok(ancestors)
    }

    /// Changes the descendant sums of `txid`, keeping the eviction index in step.
    pub(super) fn update_descendants(&mut self, txid: &Txid, change: impl FnOnce(&mut Package)) {
        let Some(entry) = self.entries.get_mut(txid) else {
            return;
        };
        self.by_descendant_rate.remove(&entry.desc_key());
        change(&mut entry.descendants);
        self.by_descendant_rate.insert(entry.desc_key(), *txid);
    }

    /// Changes the ancestor sums of `txid`, keeping the block-assembly index in step.
    fn update_ancestors(&mut self, txid: &Txid, change: impl FnOnce(&mut Package)) {
        let Some(entry) = self.entries.get_mut(txid) else {
            return;
        };
        self.by_ancestor_rate.remove(&entry.anc_key());
        change(&mut entry.ancestors);
        self.by_ancestor_rate.insert(entry.anc_key(), *txid);
    }

    /// Recomputes both sums of `txid` by walking its relatives.
    fn recompute(&mut self, txid: &Txid) {
        let Some(entry) = self.entries.get(txid) else {
            return;
        };
        let own = entry.own();
        let (mut anc, mut desc) = (own, own);
        for a in self.ancestors_of_tx(&entry.tx) {
            anc.add(&self.entries[&a].own());
        }
        for d in self.descendants_of(txid) {
            desc.add(&self.entries[&d].own());
        }
        self.update_ancestors(txid, |p| *p = anc);
        self.update_descendants(txid, |p| *p = desc);
    }

    /// Removes `txids` (any set: a confirmed parent's children may stay) and recomputes the
    /// sums of the relatives that stay.
    pub(super) fn remove_set(&mut self, txids: &[Txid]) -> Vec<MempoolEntry> {
        if txids.is_empty() {
            return Vec::new();
        }
        let leaving: HashSet<Txid> = txids.iter().copied().collect();
        let mut touched: HashSet<Txid> = HashSet::new();
        for t in txids {
            if let Some(entry) = self.entries.get(t) {
                touched.extend(self.ancestors_of_tx(&entry.tx));
                touched.extend(self.descendants_of(t));
            }
        }
        let removed: Vec<MempoolEntry> = txids.iter().filter_map(|t| self.unlink(t)).collect();
        for t in touched.difference(&leaving).copied().collect::<Vec<_>>() {
            self.recompute(&t);
        }
        removed
    }

    /// After `txid` was added with relatives already in the pool (a parent returned by a
    /// reorganisation behind a child that stayed): recomputes the sums of it and them.
    pub(super) fn recompute_around(&mut self, txid: &Txid) {
        let Some(entry) = self.entries.get(txid) else {
            return;
        };
        let mut touched = self.ancestors_of_tx(&entry.tx);
        let descendants = self.descendants_of(txid);
        for d in &descendants {
            touched.extend(self.ancestors_of_tx(&self.entries[d].tx));
        }
        touched.extend(descendants);
        touched.push(*txid);
        touched.sort_unstable();
        touched.dedup();
        for t in touched {
            self.recompute(&t);
        }
    }
}
